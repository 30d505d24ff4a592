package tui

// Key is a key press the view understands.
type Key int

// Keys of the view; KeyNone is a byte it ignores.
const (
	KeyNone Key = iota
	KeyQuit
	KeyPause
	KeyToggle
	KeyHelp
	KeyUp
	KeyDown
	KeyLeft
	KeyRight
	KeyPageUp
	KeyPageDown
	KeyHome
	KeyNext
	KeyPrev
)

// ParseKeys turns the bytes a terminal in raw mode sends into keys: single
// letters, ^C, and the escape sequences of the arrows and paging keys
// (both the CSI and the application-mode SS3 forms).
func ParseKeys(b []byte) []Key {
	var keys []Key
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b && i+2 < len(b) && (b[i+1] == '[' || b[i+1] == 'O') {
			k, n := escape(b[i+2:])
			keys = append(keys, k)
			i += 1 + n
			continue
		}
		keys = append(keys, letter(b[i]))
	}
	return keys
}

func letter(c byte) Key {
	switch c {
	case 'q', 'Q', 3: // 3 is ^C: raw mode reads it instead of raising SIGINT
		return KeyQuit
	case 'p', 'P', ' ':
		return KeyPause
	case 'd', 'D':
		return KeyToggle
	case '?', 'h', 'H':
		return KeyHelp
	case 'n', '\t':
		return KeyNext
	case 'N':
		return KeyPrev
	case 'k':
		return KeyUp
	case 'j':
		return KeyDown
	}
	return KeyNone
}

// escape reads the rest of an escape sequence after ESC [ (or ESC O): the
// key and how many bytes it took.
func escape(b []byte) (Key, int) {
	switch b[0] {
	case 'A':
		return KeyUp, 1
	case 'B':
		return KeyDown, 1
	case 'C':
		return KeyRight, 1
	case 'D':
		return KeyLeft, 1
	case 'H':
		return KeyHome, 1
	}
	// ESC [ 5 ~ and the like: digits, then ~.
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n < len(b) && b[n] == '~' {
		switch string(b[:n]) {
		case "5":
			return KeyPageUp, n + 1
		case "6":
			return KeyPageDown, n + 1
		case "1", "7":
			return KeyHome, n + 1
		}
		return KeyNone, n + 1
	}
	return KeyNone, n
}

// Handle applies key k to v, for a screen of width x height showing s;
// it says whether the view should close.
func (v *View) Handle(k Key, s *Snapshot, width, height int) (quit bool) {
	if v.Help && k != KeyQuit {
		v.Help = false
		return false
	}
	rows := Rows(s, v.ByID)
	l := newLayout(rows, width, height)
	switch k {
	case KeyQuit:
		return true
	case KeyPause:
		v.Paused = !v.Paused
	case KeyToggle:
		v.ByID, v.Top = !v.ByID, 0
		rows = Rows(s, v.ByID)
		l = newLayout(rows, width, height)
	case KeyHelp:
		v.Help = true
	case KeyUp:
		v.Top--
	case KeyDown:
		v.Top++
	case KeyLeft:
		v.Left--
	case KeyRight:
		v.Left++
	case KeyPageUp:
		v.Top -= l.rowsShow
	case KeyPageDown:
		v.Top += l.rowsShow
	case KeyHome:
		v.Top, v.Left = 0, 0
	case KeyNext, KeyPrev:
		if s.Count > 0 {
			d := map[Key]int{KeyNext: 1, KeyPrev: -1}[k]
			v.Dest, v.Top, v.Left = (v.Dest+d+s.Count)%s.Count, 0, 0
		}
		return false
	}
	l.clamp(v, len(rows))
	return false
}
