// Layout of a workflow graph, left to right, with no DOM: a node's column is its longest path
// from the entry tasks; edges that close a cycle (found by a depth-first walk) are set aside as
// back edges so the rest is a DAG that can be layered. Everything here is O(nodes + edges) plus
// one sort per column, so a 1,000-task workflow lays out in a few milliseconds.

export const NODE_W = 184;
export const NODE_H = 54;
const GAP_X = 112;
const GAP_Y = 24;
export const MARGIN = 48;

/**
 * Lay out `graph` ({nodes: [{name}], edges: [{from, to}]}).
 * Returns {positions: [{x, y}] by node index, layers: [[index]], back: Set of edge indexes,
 * index: Map name -> node index, width, height}. Edges naming unknown tasks are ignored.
 */
export function layoutGraph(graph) {
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  const index = new Map(nodes.map((node, i) => [node.name, i]));
  const out = nodes.map(() => []);
  const inDegree = new Array(nodes.length).fill(0);
  edges.forEach((edge, e) => {
    const from = index.get(edge.from);
    const to = index.get(edge.to);
    if (from === undefined || to === undefined) return;
    out[from].push([to, e]);
    if (from !== to) inDegree[to] += 1;
  });
  const back = findBackEdges(nodes.length, out, inDegree);
  const layerOf = longestPathLayers(nodes.length, out, back);
  const layers = orderLayers(layerOf, out, back);
  return { ...place(layers, nodes.length), layers, back, index };
}

/** Depth-first from every entry task (then any node left over): an edge to a node still on the stack closes a cycle. */
function findBackEdges(count, out, inDegree) {
  const colour = new Uint8Array(count); // 0 unseen, 1 on the stack, 2 done
  const back = new Set();
  const roots = [];
  for (let i = 0; i < count; i += 1) if (inDegree[i] === 0) roots.push(i);
  for (let i = 0; i < count; i += 1) roots.push(i);
  for (const root of roots) {
    if (colour[root] !== 0) continue;
    // An explicit stack: a 10,000-task chain would overflow recursion.
    const stack = [[root, 0]];
    colour[root] = 1;
    while (stack.length) {
      const frame = stack[stack.length - 1];
      const [node, next] = frame;
      if (next >= out[node].length) {
        colour[node] = 2;
        stack.pop();
        continue;
      }
      frame[1] = next + 1;
      const [to, e] = out[node][next];
      if (colour[to] === 1) back.add(e);
      else if (colour[to] === 0) {
        colour[to] = 1;
        stack.push([to, 0]);
      }
    }
  }
  return back;
}

/** Kahn's order over the forward edges; each node's column is one more than its deepest predecessor. */
function longestPathLayers(count, out, back) {
  const pending = new Array(count).fill(0);
  for (let i = 0; i < count; i += 1) for (const [to, e] of out[i]) if (!back.has(e)) pending[to] += 1;
  const layer = new Array(count).fill(0);
  const queue = [];
  for (let i = 0; i < count; i += 1) if (pending[i] === 0) queue.push(i);
  for (let head = 0; head < queue.length; head += 1) {
    const node = queue[head];
    for (const [to, e] of out[node]) {
      if (back.has(e)) continue;
      layer[to] = Math.max(layer[to], layer[node] + 1);
      pending[to] -= 1;
      if (pending[to] === 0) queue.push(to);
    }
  }
  return layer;
}

/** Columns in document order, then one barycentre pass so a node sits near its predecessors. */
function orderLayers(layerOf, out, back) {
  const layers = [];
  layerOf.forEach((layer, node) => {
    while (layers.length <= layer) layers.push([]);
    layers[layer].push(node);
  });
  const row = new Float64Array(layerOf.length);
  const sum = new Float64Array(layerOf.length);
  const seen = new Uint32Array(layerOf.length);
  layers.forEach((column, l) => {
    if (l > 0) {
      const key = (node) => (seen[node] ? sum[node] / seen[node] : row[node]);
      column.forEach((node, i) => (row[node] = i));
      column.sort((a, b) => key(a) - key(b) || a - b);
    }
    column.forEach((node, i) => {
      row[node] = i;
    });
    for (const node of column) {
      for (const [to, e] of out[node]) {
        if (back.has(e)) continue;
        sum[to] += row[node];
        seen[to] += 1;
      }
    }
  });
  return layers;
}

/** Pixel positions: columns NODE_W + GAP_X apart, each column centred on the tallest one. */
function place(layers, count) {
  const positions = new Array(count);
  const tallest = layers.reduce((most, column) => Math.max(most, column.length), 0);
  const fullHeight = tallest * (NODE_H + GAP_Y) - GAP_Y;
  layers.forEach((column, l) => {
    const columnHeight = column.length * (NODE_H + GAP_Y) - GAP_Y;
    const top = MARGIN + (fullHeight - columnHeight) / 2;
    column.forEach((node, i) => {
      positions[node] = { x: MARGIN + l * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) };
    });
  });
  return {
    positions,
    width: Math.max(1, layers.length) * (NODE_W + GAP_X) - GAP_X + 2 * MARGIN,
    height: Math.max(1, tallest) * (NODE_H + GAP_Y) - GAP_Y + 2 * MARGIN,
  };
}
