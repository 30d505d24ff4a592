package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// The state file holds, per destination, the paths last confirmed and a
// change seen but not confirmed yet, so that a restart neither reports
// every destination as new or changed nor forgets a change in progress.
// It is one JSON object:
//
//	{"format":"traceflow-fast monitor state","version":1,"saved":"...",
//	 "destinations":[{"destination":"10.99.0.1","name":"...",
//	   "known":{"reached":true,"paths":[{"hops":["10.0.0.1","","10.99.0.1"],"reached":true,"path_ids":[1,2]}]},
//	   "candidate":{...},"seen":1}]}
//
// a silent hop being "". It is written to a temporary file beside it,
// synced, then renamed over it: a crash leaves the old file or the new one,
// never half of one.
const (
	stateFormat  = "traceflow-fast monitor state"
	stateVersion = 1
)

type stateFile struct {
	Format       string      `json:"format"`
	Version      int         `json:"version"`
	Saved        time.Time   `json:"saved"`
	Destinations []stateDest `json:"destinations"`
}

type stateDest struct {
	Destination netip.Addr `json:"destination"`
	Name        string     `json:"name,omitempty"`
	Known       *snapshot  `json:"known"`
	Candidate   *snapshot  `json:"candidate,omitempty"`
	Seen        int        `json:"seen,omitempty"`
}

// A StateError is a state file that cannot be read, or that is not a state
// file of this program, or is damaged: it is never replaced silently.
type StateError struct {
	File   string
	Reason string
}

func (e *StateError) Error() string {
	return e.File + ": " + e.Reason + "; move it away or name another file"
}

// loadState reads the state file name; a file that does not exist is an
// empty state. Any other failure is a *StateError, in one line.
func loadState(name string) (map[netip.Addr]stateDest, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Addr]stateDest{}, nil
	}
	refuse := func(why string) error { return &StateError{File: name, Reason: why} }
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, refuse(err.Error())
	}
	var probe struct {
		Format  *string `json:"format"`
		Version int     `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil || probe.Format == nil || *probe.Format != stateFormat {
		return nil, refuse("not a traceflow-fast monitor state file")
	}
	if probe.Version != stateVersion {
		return nil, refuse(fmt.Sprintf("state file version %d, this program reads version %d", probe.Version, stateVersion))
	}
	var sf stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, refuse(fmt.Sprintf("damaged state file (%v)", err))
	}
	out := make(map[netip.Addr]stateDest, len(sf.Destinations))
	for i, d := range sf.Destinations {
		if !d.Destination.IsValid() || d.Known == nil || d.Seen < 0 || (d.Candidate == nil) != (d.Seen == 0) {
			return nil, refuse(fmt.Sprintf("damaged state file (destination %d is incomplete)", i+1))
		}
		out[d.Destination] = d
	}
	return out, nil
}

// checkWritable makes sure the state file name can be written where it
// will be: beside it, for the rename, in its directory.
func checkWritable(name string) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &StateError{File: name, Reason: "cannot be written in its directory (" + err.Error() + ")"}
	}
	f.Close()
	return os.Remove(f.Name())
}

// saveState writes sf to the file name atomically.
func saveState(name string, sf *stateFile) error {
	b, err := json.Marshal(sf)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if dir, err := os.Open(filepath.Dir(name)); err == nil {
		dir.Sync() // the rename itself, where the file system needs it
		dir.Close()
	}
	return nil
}
