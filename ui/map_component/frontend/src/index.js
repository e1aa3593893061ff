// curator's map: every point of a map drawn with regl-scatterplot (WebGL), inside a Streamlit
// component iframe (ui/map_component/__init__.py is the Python side).
//
// What crosses the wire, and when:
// - positions: float32 x[n] then y[n] in [-1, 1], fetched once per map from /curator/blob/DIGEST
//   (DIGEST: the content hash) and kept in memory by digest; the URL never changes for the
//   same content, so the browser's HTTP cache also answers a reload or a new tab;
// - local density: one uint8 level per point, fetched once per map: it sets the point's opacity;
// - density contours: JSON polylines in view coordinates, fetched once per map;
// - colours: one uint8 legend code per point, fetched when the colouring changes;
// - filters and deletes: a bitmask (1 bit per point) of greyed points; the selection: a bitmask;
// - hover: one pair's text from /curator/pair/DIGEST/INDEX, when the pointer rests on it.
// Streamlit's args carry only digests, the legend, labels and settings (a few KB).
import createScatterplot from 'regl-scatterplot';

const GREY = '#c8c8c8';
const FINE_ZOOM = 1.8;       // camera zoom from which fine cluster labels take over from coarse
const HOVER_DELAY_MS = 60;
const BLOB_CACHE = 24;       // digests kept in memory (positions, densities, codes, masks)
// Opacity and size by local density. Where c points of full size would overlap on average,
// points are drawn smaller (c^-SIZE_FALLOFF of the map's point size, MIN_SIZE_SHARE at least),
// so a dense core shows a finer grain, and with the opacity a at which, at that size, together
// they cover a pixel to 1 - (1 - a)^c = a target that grows with log c: from ISOLATED_OPACITY
// (points that overlap nothing) to FULL_COVER (FULL_OVERLAP points on a pixel). A dense core so
// stays darker than sparse points, but not a blot: twice the overlap looks denser, not twice as
// dense; isolated points stay visible without outweighing a core.
const DENSITY_LEVELS = 256;  // the server's uint8 levels: steps * log2(points per unit² of view)
const SIZE_FALLOFF = 0.15;
const MIN_SIZE_SHARE = 0.5;
const ISOLATED_OPACITY = 0.75;
const FULL_COVER = 0.97;
const FULL_OVERLAP = 1000;
const MIN_OPACITY = 0.04;    // below it, 8-bit blending drops light colours (faded, grey) altogether
const ZOOM_STEP = 0.25;      // opacities and sizes follow the zoom in quarter doublings

const $ = (id) => document.getElementById(id);
const root = $('root');
const plotDiv = $('plot');
const labelCanvas = $('labels');
const tooltip = $('tooltip');

// What tests and the benchmark read (window.curatorMap in the component's frame). `times`:
// when (Date.now()) the last gesture was sent, the last arguments arrived, their data was at
// hand, the positions were unpacked and the points drawn: where a slow step's time goes.
const report = {
  n: 0, pointsDrawn: 0, renders: 0, draws: 0, drawnKey: '', selectedCount: 0, colorBy: '', dimCount: 0,
  labelsShown: [], labelBoxes: [], zoom: [1, 0], lastPolygon: null, hover: null, lastEvent: null,
  webgl: true, fetched: [], indexCached: false, indexStored: '', times: {}, contourLines: 0,
  // Where point i is on the plot, in CSS pixels from the plot's top left corner.
  screenOf: (i) => toScreen(positions.rows[i][0], positions.rows[i][1], plotDiv.clientWidth, plotDiv.clientHeight),
  // Point i's opacity and size at the current zoom, and its density level.
  opacityOf: (i) => encoding.opacity[positions.rows[i][3]],
  sizeOf: (i) => encoding.pointSize[positions.rows[i][3]],
  densityOf: (i) => positions.rows[i][3] % DENSITY_LEVELS,
};
window.curatorMap = report;

// --- Streamlit's component protocol (what streamlit-component-lib does, without React) ---
function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, '*');
}
let eventCounter = 0;
function emit(event) {
  // A unique id per event: the Python side acts once per id, whatever reruns happen.
  const value = { ...event, id: `${Date.now()}-${eventCounter++}` };
  report.times.emitted = Date.now();
  report.lastEvent = value;
  send('streamlit:setComponentValue', { value, dataType: 'json' });
}

function apiBase() {
  const path = window.location.pathname;
  const at = path.indexOf('/component/');
  return `${at >= 0 ? path.slice(0, at) : ''}/curator`;
}

const blobs = new Map(); // digest -> Promise<ArrayBuffer>
function blob(digest) {
  if (digest.startsWith('b64:')) { // small bitmasks come inline
    return Promise.resolve(Uint8Array.from(atob(digest.slice(4)), (c) => c.charCodeAt(0)).buffer);
  }
  if (!blobs.has(digest)) {
    report.fetched.push(digest);
    const request = fetch(`${apiBase()}/blob/${digest}`).then((r) => {
      if (!r.ok) throw new Error(`map data ${digest}: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    request.catch(() => blobs.delete(digest));
    blobs.set(digest, request);
    while (blobs.size > BLOB_CACHE) blobs.delete(blobs.keys().next().value);
  }
  return blobs.get(digest);
}

// The spatial index regl-scatterplot builds over the positions (KDBush; ~1 s for 1M points)
// is kept in IndexedDB under the positions' digest: a later visit to the same map skips it.
const INDEX_STORE = 'spatial-index';
function indexDb() {
  return new Promise((resolve) => {
    try {
      const request = indexedDB.open('curator-map', 1);
      request.onupgradeneeded = () => request.result.createObjectStore(INDEX_STORE);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => resolve(null);
    } catch (err) {
      resolve(null); // no IndexedDB (a private window, a sandbox): build the index each time
    }
  });
}

async function storedIndex(digest) {
  const db = await indexDb();
  if (!db) return null;
  return new Promise((resolve) => {
    const request = db.transaction(INDEX_STORE).objectStore(INDEX_STORE).get(digest);
    request.onsuccess = () => resolve(request.result instanceof ArrayBuffer ? request.result : null);
    request.onerror = () => resolve(null);
  });
}

async function storeIndex(digest, index) {
  const db = await indexDb();
  if (!db || !(index instanceof ArrayBuffer)) return;
  const transaction = db.transaction(INDEX_STORE, 'readwrite');
  const store = transaction.objectStore(INDEX_STORE);
  store.clear(); // one map's index at a time: ~20 MB for 1M points
  store.put(index, digest);
  transaction.oncomplete = () => { report.indexStored = digest; };
}

function hasWebGL() {
  try {
    const c = document.createElement('canvas');
    return Boolean(c.getContext('webgl2') || c.getContext('webgl'));
  } catch (err) {
    return false;
  }
}

// --- state ---
let args = null;
let plot = null;
let renderSeq = 0;
let positions = null;        // {key, n, rows}: rows[i] = [x, y, colour, opacity] as regl-scatterplot keeps them
// {zoom, opacity, pointSize}: each density level's opacity and size at that zoom, then the
// same levels for selected points (rows[i][3]: the level, + DENSITY_LEVELS when selected)
let encoding = { zoom: 0, opacity: [], pointSize: [] };
let contours = null;         // {key, levels: [{share, lines: [[x0, y0, x1, y1, ...], ...]}, ...]}
let contoursShown = true;
let spatialIndex = null;     // regl-scatterplot's KDBush buffer for the current positions
let drawnKey = '';
let view = null;
let mode = 'pan';
let lasso = null;            // the lasso (or box) being drawn: screen points
let lassoMouseUp = false;   // the click event that follows a lasso's mouse-up is not a click
let hoverTimer = null;
let mouse = [0, 0];

function createPlot() {
  const canvas = document.createElement('canvas');
  plotDiv.appendChild(canvas);
  plot = createScatterplot({
    canvas,
    backgroundColor: '#ffffff',
    pointColorActive: '#111111',
    pointColorHover: '#000000',
    // No lasso or rotation of regl-scatterplot's own: its lasso selects the points itself
    // before it says where the lasso was (1.7 s for 650k points on 2 cores); the server
    // selects exactly, so the lasso here only draws the polygon and sends it.
    actionKeyMap: {},
    deselectOnDblClick: false,
    deselectOnEscape: false,
  });
  plot.subscribe('select', ({ points }) => {
    if (lasso || points.length !== 1) return;
    emit({ kind: 'click', index: points[0] });
  });
  plot.subscribe('view', (event) => { view = event.view; scheduleLabels(); followZoom(); });
  plot.subscribe('draw', (event) => { report.draws += 1; view = event.view; });
  plot.subscribe('pointOver', (index) => {
    clearTimeout(hoverTimer);
    if (!lasso) hoverTimer = setTimeout(() => showHover(index), HOVER_DELAY_MS);
  });
  plot.subscribe('pointOut', () => { clearTimeout(hoverTimer); hideTooltip(); });
  root.addEventListener('mousemove', (e) => { mouse = plotPoint(e); });
  root.addEventListener('mouseleave', hideTooltip);
  plotDiv.addEventListener('mousedown', startLasso, true);
  window.addEventListener('mousemove', extendLasso, true);
  window.addEventListener('mouseup', endLasso, true);
  window.addEventListener('click', (event) => {
    // A lasso closed where it started ends in what the browser calls a click: keep it from
    // regl-scatterplot, which would select (and redraw for) the point under it.
    if (lassoMouseUp) event.stopPropagation();
    lassoMouseUp = false;
  }, true);
  plotDiv.addEventListener('dblclick', clearSelection);
  window.addEventListener('keydown', (e) => { if (e.key === 'Escape') clearSelection(); });
  setMode('pan');
}

function clearSelection() {
  if (args && args.selectedCount) emit({ kind: 'clear' });
  plot.deselect({ preventEvent: true });
}

function setMode(newMode) {
  mode = newMode;
  plotDiv.style.cursor = mode === 'pan' ? '' : 'crosshair';
  for (const m of ['pan', 'lasso', 'box']) $(`mode-${m}`).setAttribute('aria-pressed', String(m === mode));
}
$('mode-pan').onclick = () => setMode('pan');
$('mode-lasso').onclick = () => setMode('lasso');
$('mode-box').onclick = () => setMode('box');
$('fit').onclick = () => plot && plot.zoomToOrigin({ transition: true });
$('contours').onclick = () => {
  contoursShown = !contoursShown;
  $('contours').setAttribute('aria-pressed', String(contoursShown));
  drawLabels();
};

// --- the lasso: drawn on an overlay, sent as a polygon in map coordinates ---
function plotPoint(event) {
  const box = plotDiv.getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

function startLasso(event) {
  lassoMouseUp = false;
  if (event.button !== 0 || !positions || !(mode !== 'pan' || event.shiftKey)) return;
  lasso = { box: mode === 'box', points: [plotPoint(event)] };
  hideTooltip();
  // The press, the moves and the click of a lasso are the lasso's alone: regl-scatterplot's
  // camera would pan, and its hover would redraw all points at each point passed over
  // (half a second a frame for 1M points in software WebGL).
  event.preventDefault();
  event.stopPropagation();
}

function extendLasso(event) {
  if (!lasso) return;
  event.stopPropagation();
  const point = plotPoint(event);
  const last = lasso.points[lasso.points.length - 1];
  if (lasso.box) lasso.points = [lasso.points[0], point];
  else if (Math.hypot(point[0] - last[0], point[1] - last[1]) >= 3) lasso.points.push(point);
  drawLasso();
}

function lassoPolygon() {
  if (!lasso.box) return lasso.points;
  const [[x0, y0], [x1, y1]] = lasso.points;
  return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
}

function endLasso(event) {
  if (!lasso) return;
  extendLasso(event);
  const screen = lassoPolygon();
  const { box } = lasso;
  lasso = null;
  lassoMouseUp = true;
  drawLabels();
  const [x0, x1] = [Math.min(...screen.map((p) => p[0])), Math.max(...screen.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...screen.map((p) => p[1])), Math.max(...screen.map((p) => p[1]))];
  if (screen.length < 3 || x1 - x0 < 3 || y1 - y0 < 3) return; // a click, not a lasso
  const { cx, cy, scale } = args.view;
  const polygon = screen.map(([sx, sy]) => {
    const [x, y] = fromScreen(sx, sy, plotDiv.clientWidth, plotDiv.clientHeight);
    return [x / scale + cx, y / scale + cy];
  });
  report.lastPolygon = polygon;
  emit({ kind: 'polygon', shape: box ? 'box' : 'lasso', polygon });
}

function drawLasso() {
  drawLabels();
  if (!lasso || lasso.points.length < 2) return;
  const ctx = labelCanvas.getContext('2d');
  ctx.beginPath();
  lassoPolygon().forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
  ctx.fillStyle = 'rgba(0, 104, 201, 0.08)';
  ctx.fill();
  ctx.lineWidth = 2;
  ctx.strokeStyle = '#0068c9';
  ctx.stroke();
}

// --- bits ---
function bitAt(bytes, i) {
  return (bytes[i >> 3] >> (i & 7)) & 1;
}

// --- drawing ---
async function render(newArgs) {
  const seq = ++renderSeq;
  args = newArgs;
  report.times.args = Date.now();
  report.renders += 1;
  root.style.height = `${args.height}px`;
  send('streamlit:setFrameHeight', { height: args.height });
  if (!plot) createPlot();
  drawLegend();
  const [pos, density, outlines, codes, dim, selected] = await Promise.all([
    blob(args.points), blob(args.density), blob(args.contours), blob(args.codes),
    args.dim ? blob(args.dim) : null, args.selected ? blob(args.selected) : null,
  ]);
  if (seq !== renderSeq) return; // a newer render came while these were on their way
  if (!contours || contours.key !== args.contours) {
    contours = { key: args.contours, levels: JSON.parse(new TextDecoder().decode(outlines)) };
  }
  report.times.data = Date.now();
  const started = performance.now();
  if (!positions || positions.key !== args.points) {
    const all = new Float32Array(pos);
    const rows = new Array(args.n);
    for (let i = 0; i < args.n; i += 1) rows[i] = [all[i], all[args.n + i], 0, 0];
    positions = { key: args.points, n: args.n, rows };
    report.times.unpacked = Date.now();
    spatialIndex = await storedIndex(args.points);
    report.indexCached = Boolean(spatialIndex);
    if (seq !== renderSeq) return;
    drawnKey = '';
  }
  const newKey = `${args.points}/${args.codes}/${args.dim}/${args.selected}`;
  if (newKey !== drawnKey) {
    // One legend code per point, and what the selection and the filters make of it: the
    // palette, then the palette faded (points outside a selection), then grey (greyed out).
    // And one opacity level per point: its density level, one table further on when selected.
    const k = args.palette.length;
    const code = new Uint8Array(codes);
    const level = new Uint8Array(density);
    const dimBits = dim ? new Uint8Array(dim) : null;
    const chosenBits = selected ? new Uint8Array(selected) : null;
    const { rows } = positions;
    for (let i = 0; i < positions.n; i += 1) {
      let z = code[i];
      let w = level[i];
      if (chosenBits) {
        if (bitAt(chosenBits, i)) w += DENSITY_LEVELS;
        else z += k;
      }
      if (dimBits && bitAt(dimBits, i)) z = 2 * k;
      rows[i][2] = z;
      rows[i][3] = w;
    }
    // Every set() redraws all points at the next frame (half a second for 1M in software
    // WebGL): set only here, in the same tick as draw(), so that the two share one frame.
    plot.set({
      pointColor: [...args.palette, ...args.palette.map(faded), GREY], colorBy: 'valueA',
      opacityBy: 'valueB', sizeBy: 'valueB', ...densityEncoding(),
    });
    const options = { zDataType: 'categorical', wDataType: 'categorical', preventFilterReset: true };
    if (spatialIndex) options.spatialIndex = spatialIndex;
    // The same rows array each time: regl-scatterplot keeps it as is, with no conversion.
    await plot.draw(rows, options);
    if (seq !== renderSeq) return;
    if (!spatialIndex) {
      spatialIndex = plot.get('spatialIndex');
      storeIndex(args.points, spatialIndex);
    }
    // regl-scatterplot outlines a clicked point itself; any other selection is drawn in colour.
    if (args.selectedCount !== 1) plot.deselect({ preventEvent: true });
    drawnKey = newKey;
    report.pointsDrawn = positions.n;
  }
  report.n = args.n;
  report.colorBy = args.colorBy;
  report.dimCount = args.dimCount;
  report.selectedCount = args.selectedCount;
  view = plot.get('cameraView');
  drawLabels();
  $('status').textContent = `${args.n.toLocaleString('en-US')} points`
    + (args.selectedCount ? ` · ${args.selectedCount.toLocaleString('en-US')} selected` : '')
    + ` · drawn in ${Math.round(performance.now() - started)} ms`;
  report.drawnKey = `${drawnKey}|${args.labelsKey}`;
  report.times.drawn = Date.now();
}

// --- opacity and size by density ---
function densityEncoding() {
  // A level's expected overlap: its density (points per unit² of the view) times a point's
  // area at this zoom. Zooming in spreads points faster than regl-scatterplot's 'asinh' point
  // scale grows them, so the overlap falls and points turn opaque and full size again.
  const camera = plot.get('cameraView');
  const zoom = Math.hypot(camera[0], camera[1]);
  const pixelsPerUnit = (zoom * plotDiv.clientHeight) / 2;
  const pointScale = zoom > 1 ? Math.asinh(zoom) / Math.asinh(1) : Math.max(1 / args.pointSize, zoom);
  const radius = (args.pointSize * pointScale) / 2 / pixelsPerUnit;
  const opacity = [];
  const pointSize = [];
  for (let level = 0; level < DENSITY_LEVELS; level += 1) {
    const fullSizeOverlap = 2 ** (level / args.densitySteps) * Math.PI * radius * radius;
    const share = Math.min(1, Math.max(MIN_SIZE_SHARE, fullSizeOverlap ** -SIZE_FALLOFF));
    const overlap = Math.max(1, fullSizeOverlap * share * share);
    const cover = ISOLATED_OPACITY
      + (FULL_COVER - ISOLATED_OPACITY) * Math.min(1, Math.log(overlap) / Math.log(FULL_OVERLAP));
    opacity.push(Math.max(MIN_OPACITY, 1 - (1 - cover) ** (1 / overlap)));
    pointSize.push(args.pointSize * share);
  }
  // Selected points are what the user looks for: drawn stronger than the density alone says,
  // so that a few of them inside a dense core still show.
  encoding = { zoom, opacity: [...opacity, ...opacity.map(Math.sqrt)], pointSize: [...pointSize, ...pointSize] };
  return { opacity: encoding.opacity, pointSize: encoding.pointSize };
}

function followZoom() {
  const zoom = Math.hypot(view[0], view[1]);
  if (encoding.zoom && Math.abs(Math.log2(zoom / encoding.zoom)) >= ZOOM_STEP) plot.set(densityEncoding());
}

function faded(colour) {
  // #rrggbb at 15% of its strength over white: the points outside a selection.
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  const mix = (c) => Math.round(255 - (255 - c) * 0.15).toString(16).padStart(2, '0');
  return `#${mix(r)}${mix(g)}${mix(b)}`;
}

function drawLegend() {
  const rows = args.legend.map(([name, colour, count]) => `<div title="${escapeHtml(name)}">`
    + `<span class="swatch" style="background:${colour}"></span>${escapeHtml(name)} `
    + `<span style="color:#888">${count.toLocaleString('en-US')}</span></div>`);
  if (args.dimCount) {
    rows.push(`<div><span class="swatch" style="background:${GREY}"></span>${escapeHtml(args.dimLabel)} `
      + `<span style="color:#888">${args.dimCount.toLocaleString('en-US')}</span></div>`);
  }
  $('legend').innerHTML = `<div style="font-weight:600">${escapeHtml(args.colorBy)}</div>${rows.join('')}`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

// --- labels: coarse zoomed out, fine zoomed in, never over each other ---
let labelFrame = 0;
function scheduleLabels() {
  if (!labelFrame) labelFrame = requestAnimationFrame(() => { labelFrame = 0; drawLabels(); });
}

function toScreen(x, y, width, height) {
  // What regl-scatterplot's shader does: projection (aspect) * camera view * point.
  const clipX = (view[0] * x + view[4] * y + view[12]) / (width / height);
  const clipY = view[1] * x + view[5] * y + view[13];
  return [(width * (clipX + 1)) / 2, height * (0.5 - clipY / 2)];
}

function fromScreen(sx, sy, width, height) {
  // The inverse of toScreen: where on the map (view coordinates, [-1, 1]) a pixel is.
  const clipX = ((2 * sx) / width - 1) * (width / height);
  const clipY = 1 - (2 * sy) / height;
  const det = view[0] * view[5] - view[4] * view[1];
  const dx = clipX - view[12];
  const dy = clipY - view[13];
  return [(view[5] * dx - view[4] * dy) / det, (view[0] * dy - view[1] * dx) / det];
}

function drawLabels() {
  if (!args || !view) return;
  const width = plotDiv.clientWidth;
  const height = plotDiv.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  labelCanvas.width = width * ratio;
  labelCanvas.height = height * ratio;
  labelCanvas.style.width = `${width}px`;
  labelCanvas.style.height = `${height}px`;
  const ctx = labelCanvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  report.contourLines = contoursShown ? drawContours(ctx, width, height) : 0;
  const zoom = Math.hypot(view[0], view[1]);
  report.zoom = [view[0], view[1]];
  const fineFirst = zoom >= FINE_ZOOM || !args.labels.some((l) => l.level === 'coarse');
  const order = [...args.labels].sort((a, b) => {
    const rank = (l) => ((l.level === 'fine') === fineFirst ? 0 : 1);
    return rank(a) - rank(b) || b.size - a.size;
  });
  const placed = [];
  const shown = [];
  // The legend sits over the map: no label under it.
  const plotBox = plotDiv.getBoundingClientRect();
  const legendBox = $('legend').getBoundingClientRect();
  const legend = [legendBox.left - plotBox.left, legendBox.top - plotBox.top,
    legendBox.right - plotBox.left, legendBox.bottom - plotBox.top];
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.lineJoin = 'round';
  for (const label of order) {
    if (label.level === 'fine' && !fineFirst && shown.length >= 12) continue;
    const [sx, sy] = toScreen(label.x, label.y, width, height);
    const coarse = label.level === 'coarse';
    ctx.font = coarse ? '600 14px sans-serif' : '12px sans-serif';
    const w = ctx.measureText(label.text).width + 6;
    const h = coarse ? 18 : 15;
    const box = [sx - w / 2, sy - h / 2, sx + w / 2, sy + h / 2];
    // not under the toolbar (top 30 px) nor the status line (bottom 22 px)
    if (box[0] < 0 || box[1] < 30 || box[2] > width || box[3] > height - 22) continue;
    if ([legend, ...placed].some((p) => box[0] < p[2] && p[0] < box[2] && box[1] < p[3] && p[1] < box[3])) continue;
    placed.push(box);
    shown.push(label.text);
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    ctx.strokeText(label.text, sx, sy);
    ctx.fillStyle = coarse ? '#111' : '#333';
    ctx.fillText(label.text, sx, sy);
  }
  report.labelsShown = shown;
  report.labelBoxes = placed;
}

function drawContours(ctx, width, height) {
  // Under the labels, in light grey: the outer share's line lighter than the inner one's.
  let drawn = 0;
  for (const [i, { lines }] of (contours ? contours.levels : []).entries()) {
    ctx.beginPath();
    for (const line of lines) {
      for (let j = 0; j < line.length; j += 2) {
        const [sx, sy] = toScreen(line[j], line[j + 1], width, height);
        if (j) ctx.lineTo(sx, sy);
        else ctx.moveTo(sx, sy);
      }
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = i === 0 ? 'rgba(60, 60, 60, 0.5)' : 'rgba(90, 90, 90, 0.3)';
    ctx.stroke();
    drawn += lines.length;
  }
  return drawn;
}

// --- hover: one pair's text, fetched when the pointer rests on a point ---
const hoverCache = new Map();
async function showHover(index) {
  if (!args || lasso) return;
  const key = `${args.points}/${index}`;
  if (!hoverCache.has(key)) {
    hoverCache.set(key, fetch(`${apiBase()}/pair/${args.points}/${index}`).then((r) => (r.ok ? r.json() : null)));
    if (hoverCache.size > 500) hoverCache.delete(hoverCache.keys().next().value);
  }
  const pair = await hoverCache.get(key);
  if (!pair) return;
  report.hover = pair;
  tooltip.innerHTML = `<div class="meta">${escapeHtml(pair.source)} · ${escapeHtml(pair.topic)}`
    + ` · id ${escapeHtml(pair.id)}${pair.deleted ? ' · deleted' : ''}</div>`
    + `<div><b>Prompt:</b> ${escapeHtml(pair.prompt)}</div><div><b>Response:</b> ${escapeHtml(pair.response)}</div>`;
  tooltip.style.display = 'block';
  const [mx, my] = mouse;
  const left = Math.min(mx + 14, root.clientWidth - tooltip.offsetWidth - 4);
  const top = my + 14 + tooltip.offsetHeight > root.clientHeight ? my - tooltip.offsetHeight - 10 : my + 14;
  tooltip.style.left = `${Math.max(4, left)}px`;
  tooltip.style.top = `${Math.max(4, top)}px`;
}

function hideTooltip() {
  tooltip.style.display = 'none';
}

// --- start ---
window.addEventListener('message', (event) => {
  if (report.webgl && event.data && event.data.type === 'streamlit:render') {
    render(event.data.args.spec).catch((err) => {
      $('status').textContent = `map error: ${err.message}`;
      report.error = err.message;
    });
  }
});

if (hasWebGL()) {
  send('streamlit:componentReady', { apiVersion: 1 });
} else {
  report.webgl = false;
  const message = $('nowebgl');
  message.style.display = 'block';
  message.textContent = 'This map needs WebGL, and this browser has it turned off or cannot use it '
    + '(check the browser\'s hardware acceleration setting). The Clusters and Search pages still work.';
  $('toolbar').style.display = 'none';
  send('streamlit:componentReady', { apiVersion: 1 });
  send('streamlit:setFrameHeight', { height: 120 });
  emit({ kind: 'nowebgl' });
}
