// The union graph of Data (viz.Build): one destination, or several
// with every hop drawn.
var dsts = data.destinations;
// Above this many nodes the layout skips its costly refinements and
// edges are drawn straight.
var BIG = 1000;
var big = data.nodes.length > BIG;

function dstName(i) {
  var d = dsts[i];
  var s = d.name && d.name !== d.addr ? d.name + ' (' + d.addr + ')' : d.addr;
  return d.vantage ? s + ' from agent ' + d.vantage : s;
}

function nodeTitle(n) {
  if (n.source && n.vantage) return 'agent ' + n.vantage + ' ' + (n.addr || '') + '\nthe vantage point that sent these probes';
  if (n.source) return 'source ' + (n.addr || '') + '\nthe host that sent the probes';
  var lines = [n.silent ? 'silent hop: no reply' : n.addr + (n.asn ? '   AS' + n.asn : '') + (n.ixp ? '   IXP ' + n.ixp : '')];
  var via = n.via || [];
  if (via.length === 1) {
    lines.push('TTL ' + via[0].ttl);
    if (n.rtt_ms) lines.push(rttLine(n.rtt_ms));
    lines.push('path IDs ' + ranges(via[0].path_ids) + (dsts.length > 1 ? ' to ' + dstName(via[0].dst) : ''));
  } else {
    if (n.rtt_ms) lines.push(rttLine(n.rtt_ms));
    via.slice(0, 8).forEach(function (v) {
      lines.push('to ' + dstName(v.dst) + ': TTL ' + v.ttl + ', path IDs ' + ranges(v.path_ids));
    });
    if (via.length > 8) lines.push('... and ' + (via.length - 8) + ' more destinations');
  }
  var roles = [];
  if (n.destination) roles.push('destination');
  if (n.diverge) roles.push('paths diverge here');
  if (n.per_packet) roles.push('per-packet load balancer: its next hops are draws, not where each flow goes');
  if (n.converge) roles.push('paths converge here');
  if (roles.length) lines.push(roles.join(', '));
  return lines.join('\n');
}

function edgeTitle(e) {
  if (e.paths.length === 1) {
    var p = e.paths[0], d = dsts[p.dst];
    return 'path ' + (p.path + 1) + ' of ' + d.paths.length + (dsts.length > 1 ? ' to ' + dstName(p.dst) : '') + '\npath IDs ' + ranges(p.path_ids);
  }
  var seen = {}, n = 0;
  e.paths.forEach(function (p) { if (!seen[p.dst]) { seen[p.dst] = true; n++; } });
  return e.paths.length + ' distinct paths' + (n > 1 ? ' to ' + n + ' destinations' : '');
}

// Parallel edges between the same two nodes bend apart.
var parallel = {};
var edges = data.edges.map(function (e) {
  var key = e.from + '>' + e.to;
  var j = parallel[key] = (parallel[key] === undefined ? 0 : parallel[key] + 1);
  var shared = e.paths.length > 1;
  var color = shared ? SHARED : pathColor(e.paths[0].path);
  var s = {
    id: e.id, from: e.from, to: e.to, title: edgeTitle(e),
    color: { color: color, highlight: color, hover: color },
    width: shared ? 1 + Math.min(6, Math.log2(e.paths.length)) : 2
  };
  if (j > 0) s.smooth = { enabled: true, type: j % 2 ? 'curvedCW' : 'curvedCCW', roundness: 0.15 * Math.ceil(j / 2) };
  return s;
});

var nodes = new vis.DataSet(data.nodes.map(function (n) { return nodeStyle(n, nodeTitle(n)); }));
var edgeSet = new vis.DataSet(edges);
var network = new vis.Network(document.getElementById('tf-graph'), { nodes: nodes, edges: edgeSet }, networkOptions(big));
window.tfData = data;
window.tfNetwork = network;
ready(network, function () {
  if (big) {
    // The whole of a large graph fits only as a thin line: start readable,
    // at the source; zoom out, pan or search from there.
    var p = network.getPositions([data.nodes[0].id])[data.nodes[0].id];
    var scale = 0.6, el = document.getElementById('tf-graph');
    network.moveTo({ position: { x: p.x + (el.clientWidth / 2 - 80) / scale, y: p.y + (el.clientHeight / 2 - 60) / scale }, scale: scale });
  }
});

// The header: what was traced, and the colour of each distinct path.
var title = document.getElementById('tf-title');
var summary = document.getElementById('tf-summary');
var legend = document.getElementById('tf-legend');
var from = data.vantages ? (data.vantages.length > 1 ? 'agents ' : 'agent ') + data.vantages.join(', ') : (data.source || '?');
if (dsts.length === 1) {
  title.textContent = 'traceflow-fast from ' + from + ' to ' + dstName(0);
  summary.textContent = dsts[0].summary + (dsts[0].reached ? '' : ', destination not reached') + (dsts[0].partial ? ' (interrupted: partial)' : '');
  dsts[0].paths.slice(0, PALETTE.length).forEach(function (p, k) {
    var item = document.createElement('span'), line = document.createElement('span');
    line.className = 'tf-line';
    line.style.borderColor = pathColor(k);
    item.appendChild(line);
    item.appendChild(document.createTextNode('path ' + (k + 1) + ' (IDs ' + ranges(p.path_ids) + ')'));
    legend.appendChild(item);
  });
}
asLegend(legend);
if (dsts.length > 1) {
  var reached = dsts.filter(function (d) { return d.reached; }).length;
  // Several agents may have traced the same destination.
  var addrs = {};
  dsts.forEach(function (d) { addrs[d.addr] = true; });
  var distinct = Object.keys(addrs).length;
  title.textContent = 'traceflow-fast from ' + from + ' to ' + (distinct === 1 ? dsts[0].addr : distinct + ' destinations');
  summary.textContent = reached + ' reached, ' + data.nodes.length + ' nodes, ' + data.edges.length + ' links' +
    (big ? ' (scroll to zoom, drag to pan)' : '');
}

// Search: select the nodes and links of one destination and focus on it.
var byDst = null;
function index() {
  byDst = dsts.map(function () { return { nodes: [], edges: [] }; });
  data.nodes.forEach(function (n) {
    (n.via || []).forEach(function (v) { byDst[v.dst].nodes.push(n.id); });
  });
  data.edges.forEach(function (e) {
    var seen = {};
    e.paths.forEach(function (p) {
      if (!seen[p.dst]) { seen[p.dst] = true; byDst[p.dst].edges.push(e.id); }
    });
  });
}
var found = document.getElementById('tf-found');
function focusDestination(q) {
  q = String(q || '').trim().toLowerCase();
  if (!q) { network.unselectAll(); found.textContent = ''; return null; }
  var i = dsts.findIndex(function (d) { return d.addr === q || (d.name || '').toLowerCase() === q; });
  if (i < 0) i = dsts.findIndex(function (d) { return d.addr.indexOf(q) >= 0 || (d.name || '').toLowerCase().indexOf(q) >= 0; });
  if (i < 0) { network.unselectAll(); found.textContent = 'no destination matches'; return null; }
  if (!byDst) index();
  var sel = byDst[i];
  network.setSelection({ nodes: sel.nodes, edges: sel.edges }, { unselectAll: true, highlightEdges: false });
  var target = dsts[i].node || sel.nodes[sel.nodes.length - 1];
  if (target !== undefined) network.focus(target, { scale: Math.max(network.getScale(), 0.9), animation: { duration: 300, easingFunction: 'easeInOutQuad' } });
  found.textContent = dstName(i) + ': ' + dsts[i].summary;
  return { dst: i, addr: dsts[i].addr, node: target || null, nodes: sel.nodes.length, edges: sel.edges.length };
}
window.tfFocus = focusDestination;
if (dsts.length > 1) {
  var list = document.getElementById('tf-dests');
  dsts.slice(0, 5000).forEach(function (d, i) {
    var o = document.createElement('option');
    o.value = d.addr;
    if (d.name && d.name !== d.addr) o.label = d.name;
    list.appendChild(o);
  });
  var input = document.getElementById('tf-search');
  input.addEventListener('change', function () { focusDestination(input.value); });
  input.addEventListener('keydown', function (e) { if (e.key === 'Enter') focusDestination(input.value); });
  document.getElementById('tf-find').hidden = false;
}
