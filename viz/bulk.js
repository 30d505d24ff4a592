// The grouped view of several destinations (viz.BuildBulk): the router
// graph once, and a node per group of destinations with the same router
// paths, which a click opens (into blocks of one prefix, or into its
// destinations) and closes again.
var groups = data.groups;
var BIG = 1000;
var big = data.nodes.length + groups.length > BIG;
var byId = {};
data.nodes.forEach(function (n) { byId[n.id] = n; });

// The members of a group of several are parsed when first needed: to
// open the group down to them, or to search.
var membersData = {}, parsed = 0;
function members(gi) {
  var g = groups[gi];
  if (g.member) return [g.member];
  if (!membersData[gi]) {
    membersData[gi] = JSON.parse(document.getElementById('tf-members-' + gi).textContent);
    parsed++;
  }
  return membersData[gi];
}
// tfMembersParsed says how many groups' members were parsed.
window.tfMembersParsed = function () { return parsed; };

function plural(n, one, many) { return n === 1 ? '1 ' + one : count(n) + ' ' + many; }
function idCount(r) {
  if (!r) return 0;
  return r.split(',').reduce(function (n, part) {
    var ab = part.split('-');
    return n + (ab.length === 2 ? Number(ab[1]) - Number(ab[0]) + 1 : 1);
  }, 0);
}
function exitName(p) {
  var path = data.paths[p];
  return path.length ? byId[path[path.length - 1]].label : 'the source';
}

// A member is [address, path IDs per path of its group ("1-4|2,5"), RTT
// in ms, flags (1 reached, 2 interrupted), name, summary].
function memberName(m) { return m[4] ? m[4] + ' (' + m[0] + ')' : m[0]; }
function memberSummary(gi, m) {
  if (m[5]) return m[5];
  var ids = m[1].split('|').reduce(function (n, r) { return n + idCount(r); }, 0);
  var k = groups[gi].paths.length;
  return k + (k === 1 ? ' distinct path' : ' distinct paths') + ' among ' + ids + (ids === 1 ? ' path ID' : ' path IDs');
}
function memberTitle(gi, m) {
  var lines = [memberName(m) + (m[3] & 1 ? '' : '   not reached') + (m[3] & 2 ? '   (interrupted: partial)' : '')];
  if (m[2]) lines.push('RTT ' + ms(m[2]) + ' ms');
  lines.push(memberSummary(gi, m));
  var ids = m[1].split('|'), paths = groups[gi].paths;
  paths.slice(0, 8).forEach(function (p, k) { lines.push('via ' + exitName(p) + ': path IDs ' + ids[k]); });
  if (paths.length > 8) lines.push('... and ' + (paths.length - 8) + ' more paths');
  return lines.join('\n');
}
function memberStyle(id, gi, m, level) {
  var s = nodeStyle({ id: id, label: m[4] ? m[0] + '\n' + m[4] : m[0], level: level, destination: true }, memberTitle(gi, m));
  if (!(m[3] & 1)) unreached(s);
  return s;
}
function unreached(s) {
  s.color = { background: '#fafafa', border: '#c62828', highlight: { background: '#fff59d', border: '#f57f17' }, hover: { background: '#fafafa', border: '#222' } };
  s.shapeProperties = { borderDashes: [5, 3] };
  s.font = { size: 14, color: '#b71c1c' };
}

function routerTitle(n) {
  if (n.source) return 'source ' + (n.addr || '') + '\nthe host that sent the probes\ntowards ' + plural(n.dsts, 'destination', 'destinations');
  var lines = [n.silent ? 'silent hop: no reply' : n.addr + (n.asn ? '   AS' + n.asn : '') + (n.ixp ? '   IXP ' + n.ixp : '')];
  lines.push('TTL ' + n.level + ', towards ' + plural(n.dsts, 'destination', 'destinations'));
  if (n.rtt_ms) lines.push(rttLine(n.rtt_ms));
  var roles = [];
  if (n.diverge) roles.push('paths diverge here');
  if (n.converge) roles.push('paths converge here');
  if (roles.length) lines.push(roles.join(', '));
  return lines.join('\n');
}

function groupTitle(g, isOpen) {
  var lines = [g.label.replace('\n', ', ')];
  var more = g.nprefixes > g.prefixes.length ? ' and ' + count(g.nprefixes - g.prefixes.length) + ' more' : '';
  lines.push('in ' + plural(g.nprefixes, 'prefix', 'prefixes') + ': ' + g.prefixes.join(', ') + more);
  lines.push(plural(g.paths.length, 'router path', 'router paths') + ', via ' +
    g.paths.slice(0, 8).map(exitName).filter(function (x, i, a) { return a.indexOf(x) === i; }).join(', ') + (g.paths.length > 8 ? ', ...' : ''));
  lines.push(isOpen ? 'click to close' : 'click to list them');
  return lines.join('\n');
}
// The label of a group: where its destinations are and how many (on two
// lines when long), then how many were reached.
function groupLabel(g) {
  var lines = g.label.split('\n');
  return lines[0].length > 34 ? g.label.replace(' - ', '\n') : g.label;
}
function mark(label, isOpen) { return (isOpen ? '\u25be ' : '\u25b8 ') + label; }
var GROUP_COLOR = { background: '#dcedc8', border: '#2e7d32', highlight: { background: '#fff59d', border: '#f57f17' }, hover: { background: '#dcedc8', border: '#222' } };
function groupStyle(g, gi) {
  if (g.member) {
    var one = memberStyle(g.id, gi, g.member, g.level);
    one.label = g.label;
    return one;
  }
  var s = {
    id: g.id, label: mark(groupLabel(g), false), level: g.level, title: groupTitle(g, false), borderWidth: 3, widthConstraint: { maximum: 400 },
    shadow: { enabled: true, color: 'rgba(46, 125, 50, 0.45)', size: 0, x: 5, y: 5 },
    font: { color: '#1b5e20' }, color: GROUP_COLOR
  };
  if (g.reached === 0) unreached(s);
  return s;
}
function blockStyle(id, b, level) {
  return {
    id: id, label: mark(b[0], false), level: level, title: b[0].replace('\n', ', ') + '\nclick to list them', borderWidth: 2,
    shadow: { enabled: true, color: 'rgba(85, 139, 47, 0.35)', size: 0, x: 3, y: 3 },
    font: { color: '#33691e' }, color: { background: '#f1f8e9', border: '#558b2f', highlight: GROUP_COLOR.highlight, hover: { background: '#f1f8e9', border: '#222' } }
  };
}

function edgeTitle(e) {
  var lines = [(e.path < 0 ? e.npaths + ' router paths' : 'router path ' + (e.path + 1)) + ': ' +
    plural(e.dsts, 'destination', 'destinations') + ', ' + plural(e.ids, 'path ID', 'path IDs')];
  e.sample.forEach(function (s) { lines.push(s[0] + ': path IDs ' + s[1]); });
  if (e.dsts > e.sample.length) lines.push('... and ' + plural(e.dsts - e.sample.length, 'more destination', 'more destinations'));
  return lines.join('\n');
}
// Parallel edges between the same two nodes bend apart; edgesOf finds
// the drawn edges between two nodes.
var edgesOf = {};
var edgeList = data.edges.map(function (e) {
  var key = e.from + '>' + e.to;
  var j = (edgesOf[key] = edgesOf[key] || []).push(e) - 1;
  var color = e.path < 0 ? SHARED : pathColor(e.path);
  var s = {
    id: e.id, from: e.from, to: e.to, title: edgeTitle(e),
    color: { color: color, highlight: color, hover: color }, width: 1 + 4 * Math.log(1 + e.dsts) / Math.log(1 + data.destinations)
  };
  if (j > 0) s.smooth = { enabled: true, type: j % 2 ? 'curvedCW' : 'curvedCCW', roundness: 0.15 * Math.ceil(j / 2) };
  return s;
});

var nodes = new vis.DataSet(data.nodes.map(function (n) { return nodeStyle(n, routerTitle(n)); }).concat(groups.map(groupStyle)));
var edges = new vis.DataSet(edgeList);
var options = networkOptions(big);
// Room for the groups' labels.
options.layout.hierarchical.levelSeparation = 240;
var network = new vis.Network(document.getElementById('tf-graph'), { nodes: nodes, edges: edges }, options);
window.tfData = data;
window.tfNetwork = network;
ready(network, function () {
  // The router graph first, fitted to the window (with the groups, but
  // for a crowd of them).
  var ids = data.nodes.map(function (n) { return n.id; });
  if (!big) ids = ids.concat(groups.map(function (g) { return g.id; }));
  network.fit({ nodes: ids, maxZoomLevel: 1.2, animation: false });
  if (network.getScale() < 0.3) {
    // Too many routers to read at once: start at the source.
    var p = network.getPositions([sourceId()])[sourceId()];
    var el = document.getElementById('tf-graph');
    network.moveTo({ position: { x: p.x + (el.clientWidth / 2 - 80) / 0.6, y: p.y }, scale: 0.6 });
  }
});
function sourceId() { return data.nodes[0].id; }

// Opening and closing groups and blocks. info says, per node id of a
// group, block or member, which group (g), block (b, -1 for the group
// itself) or member (m) it is, and its level.
var info = {}, open = {};
groups.forEach(function (g, gi) { info[g.id] = { g: gi, b: -1, level: g.level }; });
function childBlocks(gi, b) {
  var out = [];
  (groups[gi].blocks || []).forEach(function (bl, i) { if (bl[3] === b) out.push(i); });
  return out;
}
function openable(id) { var x = info[id]; return !!x && x.m === undefined && !groups[x.g].member; }
function labelOf(x) { return x.b < 0 ? groupLabel(groups[x.g]) : groups[x.g].blocks[x.b][0]; }
function openNode(id) {
  if (open[id] || !openable(id)) return;
  var x = info[id], g = groups[x.g], kids = [];
  var blocks = childBlocks(x.g, x.b);
  if (blocks.length) {
    blocks.forEach(function (bi) {
      var cid = g.id + '.b' + bi;
      info[cid] = { g: x.g, b: bi, level: x.level + 1 };
      kids.push(blockStyle(cid, g.blocks[bi], x.level + 1));
    });
  } else {
    var list = members(x.g), lo = x.b < 0 ? 0 : g.blocks[x.b][1], hi = x.b < 0 ? g.count : g.blocks[x.b][2];
    for (var i = lo; i < hi; i++) {
      var cid = g.id + ':' + i;
      info[cid] = { g: x.g, m: i, level: x.level + 1 };
      kids.push(memberStyle(cid, x.g, list[i], x.level + 1));
    }
  }
  var kidEdges = kids.map(function (k) {
    return { id: id + '>' + k.id, from: id, to: k.id, width: 1, arrows: { to: { enabled: false } }, color: { color: '#7cb342', highlight: '#33691e', hover: '#33691e' } };
  });
  nodes.add(kids);
  edges.add(kidEdges);
  open[id] = { nodes: kids.map(function (k) { return k.id; }), edges: kidEdges.map(function (e) { return e.id; }) };
  nodes.update({ id: id, label: mark(labelOf(x), true), title: x.b < 0 ? groupTitle(g, true) : labelOf(x).replace('\n', ', ') + '\nclick to close' });
}
function closeNode(id) {
  var o = open[id];
  if (!o) return;
  o.nodes.forEach(function (k) { closeNode(k); delete info[k]; });
  edges.remove(o.edges);
  nodes.remove(o.nodes);
  delete open[id];
  var x = info[id];
  nodes.update({ id: id, label: mark(labelOf(x), false), title: x.b < 0 ? groupTitle(groups[x.g], false) : labelOf(x).replace('\n', ', ') + '\nclick to list them' });
}
// inPlace runs change, which lays the graph out again, and moves the view
// to keep node id where it was in the window, at most 60% across it to
// leave room for what it opens into, on its right.
function inPlace(id, change) {
  var el = document.getElementById('tf-graph');
  var before = network.canvasToDOM(network.getPosition(id));
  change();
  var p = network.getPosition(id), scale = network.getScale();
  var x = Math.min(before.x, el.clientWidth * 0.6), y = before.y;
  network.moveTo({ position: { x: p.x - (x - el.clientWidth / 2) / scale, y: p.y - (y - el.clientHeight / 2) / scale }, scale: scale, animation: false });
}
network.on('click', function (p) {
  if (p.nodes.length !== 1 || !openable(p.nodes[0])) return;
  var id = p.nodes[0];
  inPlace(id, function () { if (open[id]) closeNode(id); else openNode(id); });
});
window.tfOpen = function (id) { openNode(id); return open[id] ? open[id].nodes.length : 0; };
window.tfClose = closeNode;
window.tfIsOpen = function (id) { return !!open[id]; };

// The header: what was traced, how it groups.
var routers = data.nodes.filter(function (n) { return !n.source; }).length;
document.getElementById('tf-title').textContent = 'traceflow-fast from ' + (data.source || '?') + ' to ' + plural(data.destinations, 'destination', 'destinations');
document.getElementById('tf-summary').textContent = count(data.reached) + ' reached; ' +
  plural(groups.length, 'group', 'groups') + ' of destinations with the same router paths, ' + plural(routers, 'hop', 'hops') +
  ' (click a group to list its destinations)';
document.getElementById('tf-legend-group').hidden = false;
asLegend(document.getElementById('tf-legend'));

// Search: open the group of a destination down to it, select its paths
// and focus on it.
var index = null;
function buildIndex() {
  index = new Map();
  groups.forEach(function (g, gi) {
    members(gi).forEach(function (m, i) {
      if (!index.has(m[0])) index.set(m[0], [gi, i]);
      if (m[4] && !index.has(m[4].toLowerCase())) index.set(m[4].toLowerCase(), [gi, i]);
    });
  });
}
function find(q) {
  if (!index) buildIndex();
  if (index.has(q)) return index.get(q);
  for (var gi = 0; gi < groups.length; gi++) {
    var list = members(gi);
    for (var i = 0; i < list.length; i++) {
      if (list[i][0].indexOf(q) >= 0 || (list[i][4] && list[i][4].toLowerCase().indexOf(q) >= 0)) return [gi, i];
    }
  }
  return null;
}
// reveal opens group gi down to its member i and returns the ids of what
// leads to it: the group, its blocks, the member.
function reveal(gi, i) {
  var g = groups[gi], chain = [g.id];
  if (g.member) return chain;
  for (var b = -1; ;) {
    var next = childBlocks(gi, b).filter(function (bi) { return g.blocks[bi][1] <= i && i < g.blocks[bi][2]; });
    if (!next.length) break;
    b = next[0];
    chain.push(g.id + '.b' + b);
  }
  chain.forEach(openNode);
  chain.push(g.id + ':' + i);
  return chain;
}
// pathSelection returns the routers and edges of the paths of group gi.
function pathSelection(gi) {
  var g = groups[gi], sel = { nodes: [], edges: [] };
  g.paths.forEach(function (p) {
    var hops = ['source'].concat(data.paths[p], [g.id]);
    for (var k = 1; k < hops.length; k++) {
      if (k < hops.length - 1 && sel.nodes.indexOf(hops[k]) < 0) sel.nodes.push(hops[k]);
      (edgesOf[hops[k - 1] + '>' + hops[k]] || []).forEach(function (e) {
        if ((e.path === p || e.path < 0) && sel.edges.indexOf(e.id) < 0) sel.edges.push(e.id);
      });
    }
  });
  return sel;
}
var found = document.getElementById('tf-found');
function focusDestination(q) {
  q = String(q || '').trim().toLowerCase();
  if (!q) { network.unselectAll(); found.textContent = ''; return null; }
  var hit = find(q);
  if (!hit) { network.unselectAll(); found.textContent = 'no destination matches'; return null; }
  var gi = hit[0], m = members(gi)[hit[1]];
  var chain = reveal(gi, hit[1]), sel = pathSelection(gi);
  for (var k = 0; k < chain.length; k++) {
    sel.nodes.push(chain[k]);
    if (k > 0) sel.edges.push(chain[k - 1] + '>' + chain[k]);
  }
  var target = chain[chain.length - 1];
  network.setSelection(sel, { unselectAll: true, highlightEdges: false });
  network.focus(target, { scale: Math.max(network.getScale(), 0.9), animation: false });
  found.textContent = memberName(m) + ': ' + memberSummary(gi, m) + (m[3] & 1 ? '' : ', not reached');
  return { group: groups[gi].id, addr: m[0], node: target, nodes: sel.nodes.length, edges: sel.edges.length };
}
window.tfFocus = focusDestination;
var input = document.getElementById('tf-search');
input.addEventListener('change', function () { focusDestination(input.value); });
input.addEventListener('keydown', function (e) { if (e.key === 'Enter') focusDestination(input.value); });
input.addEventListener('focus', function () {
  // The suggestions: the first 5,000 destinations.
  var list = document.getElementById('tf-dests');
  if (list.childElementCount) return;
  var n = 0;
  for (var gi = 0; gi < groups.length && n < 5000; gi++) {
    members(gi).slice(0, 5000 - n).forEach(function (m) {
      var o = document.createElement('option');
      o.value = m[0];
      if (m[4]) o.label = m[4];
      list.appendChild(o);
      n++;
    });
  }
});
document.getElementById('tf-find').hidden = false;
