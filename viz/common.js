// What both views share: the data, colours, number formats, the style of
// a hop's node and the network's options.
var t0 = performance.now();
var data = JSON.parse(document.getElementById('tf-data').textContent);
var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#bcbd22', '#3f51b5', '#00897b', '#c2185b'];
var SHARED = '#9e9e9e';
// With an AS table (--asn-db) the nodes are filled by AS: one light
// colour per AS number, in AS number order.
var AS_PALETTE = ['#bbdefb', '#ffe0b2', '#e1bee7', '#fff9c4', '#b2dfdb', '#f8bbd0', '#d7ccc8', '#c5cae9', '#dcedc8', '#cfd8dc'];
var asns = [];
data.nodes.forEach(function (n) { if (n.asn && asns.indexOf(n.asn) < 0) asns.push(n.asn); });
asns.sort(function (a, b) { return a - b; });
var asColors = {};
asns.forEach(function (a, i) { asColors[a] = AS_PALETTE[i % AS_PALETTE.length]; });
function asColor(a) { return asColors[a] || null; }
window.tfASColor = asColor;

function ranges(ids) {
  var out = [];
  for (var i = 0; i < ids.length;) {
    var j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    if (j - i >= 2) out.push(ids[i] + '-' + ids[j]);
    else if (j > i) out.push(ids[i], ids[j]);
    else out.push(String(ids[i]));
    i = j + 1;
  }
  return out.join(',');
}
function ms(v) { return v.toFixed(3); }
function pathColor(k) { return PALETTE[k % PALETTE.length]; }
function count(n) { return n.toLocaleString('en-US'); }
function rttLine(r) { return 'RTT min/avg/max ' + ms(r.min) + ' / ' + ms(r.avg) + ' / ' + ms(r.max) + ' ms'; }

// The node of a hop (or the source, or a destination) with title as its
// tooltip: the role in the colours, the AS in the fill.
function nodeStyle(n, title) {
  var s = { id: n.id, label: n.label, level: n.level, title: title };
  var bg = '#eef3fb', border = '#5b7db1';
  if (n.source) { bg = '#e0e0e0'; border = '#555'; }
  if (n.converge) { bg = '#f3e5f5'; border = '#6a1b9a'; s.borderWidth = 3; }
  if (n.diverge) { bg = n.converge ? bg : '#fff3e0'; border = '#e65100'; s.borderWidth = 3; }
  if (n.per_packet) { border = '#c62828'; s.borderWidth = 4; s.shapeProperties = { borderDashes: [8, 3] }; }
  if (n.destination) { bg = '#c8ecc9'; border = '#2e7d32'; s.borderWidth = 3; s.font = { size: 14, color: '#1b5e20' }; }
  if (n.asn && asColor(n.asn)) bg = asColor(n.asn); // the role stays in the border
  if (n.silent) {
    bg = '#fafafa'; border = '#9e9e9e';
    s.shapeProperties = { borderDashes: [4, 3] };
    s.font = { color: '#888' };
  }
  s.color = { background: bg, border: border, highlight: { background: '#fff59d', border: '#f57f17' }, hover: { background: bg, border: '#222' } };
  return s;
}

// The options of the network: laid out by TTL from left to right,
// without physics; a big graph skips the costly refinements of the
// layout, and its edges are straight.
function networkOptions(big) {
  return {
    autoResize: true,
    layout: {
      improvedLayout: false,
      hierarchical: {
        enabled: true, direction: 'LR', sortMethod: 'directed', shakeTowards: 'roots',
        levelSeparation: 190, nodeSpacing: big ? 45 : 60, treeSpacing: big ? 40 : 120,
        blockShifting: !big, edgeMinimization: !big, parentCentralization: !big
      }
    },
    physics: { enabled: false },
    interaction: { hover: !big, tooltipDelay: 120, hideEdgesOnDrag: big, hideEdgesOnZoom: big, multiselect: false },
    nodes: { shape: 'box', margin: 6, borderWidth: 1, font: { face: 'ui-monospace, Menlo, Consolas, monospace', size: 13 } },
    edges: {
      arrows: { to: { enabled: true, scaleFactor: 0.5 } }, selectionWidth: 2,
      smooth: big ? false : { enabled: true, type: 'cubicBezier', forceDirection: 'horizontal', roundness: 0.4 }
    }
  };
}

// ready calls place once the network is first drawn, then tells the
// tests that the page is ready.
function ready(network, place) {
  network.once('afterDrawing', function () {
    place();
    window.tfRenderMs = Math.round(performance.now() - t0);
    window.tfReadyMs = Math.round(performance.now()); // since the navigation
    window.tfReady = true;
    document.body.setAttribute('data-ready', 'true');
  });
}

// A swatch per AS in the legend, after the paths.
function asLegend(legend) {
  asns.slice(0, 64).forEach(function (a) {
    var item = document.createElement('span'), sw = document.createElement('span');
    sw.className = 'tf-sw';
    sw.style.background = asColor(a);
    sw.style.borderColor = '#5b7db1';
    item.appendChild(sw);
    item.appendChild(document.createTextNode('AS' + a));
    item.setAttribute('data-asn', String(a));
    legend.appendChild(item);
  });
  if (asns.length > 64) legend.appendChild(document.createTextNode('... and ' + (asns.length - 64) + ' more ASes'));
}
