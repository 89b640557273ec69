// The console's one page: plain HTML, CSS and a script, no build step. It renders what the server sends
// over server-sent events; every value from etcd is checked for its type where it is shown (another
// writer's value must never stop the page), and each section renders on its own. Edits go to the JSON API
// after a confirmation that shows exactly what will be written.

export interface PageOptions {
  /** Edits and actions allowed (`--write`). */
  write: boolean
  /** Who the console writes as (shown in the header; the server records it). */
  user?: string
  /** The anti-CSRF token the page sends with every write, when the server issues one. */
  csrf?: string
}

/** JSON for a `<script type="application/json">` block: `<` escaped so no value can close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c')

const escapeAttr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

export function page(options: PageOptions): string {
  const { write } = options
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="etcdkit-csrf" content="${escapeAttr(options.csrf ?? '')}">
<title>etcdkit console</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>etcdkit console</h1>
  <span id="mode" class="badge">${write ? 'read-write' : 'read-only'}</span>
  <span id="status" class="badge down" role="status" aria-live="polite">connecting</span>
  <span id="updated" class="muted"></span>
  <span id="identity" class="muted"></span>
</header>
<div class="toolbar">
  <label for="filter" class="sr">Filter</label>
  <input id="filter" type="search" autocomplete="off" spellcheck="false"
    placeholder="filter (/ to focus): orders, zone:eu-1, version:1.4, tag:canary, meta:team=pay, process:host-3, health:draining, dialect:kratos">
  <label for="dialect" class="sr">Registry dialect</label>
  <select id="dialect" title="registry dialect: one framework's registry, or all"><option value="">all dialects</option></select>
  <button id="expand-all" type="button">expand all</button>
  <button id="collapse-all" type="button">collapse all</button>
</div>
<p id="counts" class="muted"></p>
<section aria-labelledby="h-services"><h2 id="h-services">Services</h2><div id="services"></div></section>
<section aria-labelledby="h-queues"><h2 id="h-queues">Locks and elections</h2><div id="queues"></div></section>
<section aria-labelledby="h-config"><h2 id="h-config">Configuration ${write ? '<button id="config-new" type="button">new key</button>' : ''}</h2><div id="config"></div></section>
${flagSections()}
<section id="history" hidden aria-labelledby="h-history">
  <h2 id="h-history">History of <span id="history-key" class="mono"></span> <button id="history-close" type="button">close</button></h2>
  <table id="history-table" class="fixed"></table>
  <h3 id="diff-title"></h3>
  <pre id="diff" class="diff"></pre>
</section>
<dialog id="editor" aria-labelledby="editor-title">
  <form method="dialog" id="editor-form">
    <h2 id="editor-title">Edit</h2>
    <label>key <input id="editor-key" class="mono" spellcheck="false"></label>
    <label>service override (empty: shared) <input id="editor-service" class="mono" spellcheck="false"></label>
    <label><input id="editor-json" type="checkbox"> JSON (checked before sending)</label>
    <textarea id="editor-value" class="mono" rows="14" spellcheck="false" aria-label="value"></textarea>
    <p id="editor-error" class="error" role="alert"></p>
    <div class="buttons"><button id="editor-cancel" type="button" value="cancel">cancel</button>
    <button id="editor-save" type="button">review and save…</button></div>
  </form>
</dialog>
<dialog id="confirm" aria-labelledby="confirm-title">
  <form method="dialog">
    <h2 id="confirm-title">Confirm</h2>
    <p id="confirm-text"></p>
    <pre id="confirm-detail" class="diff"></pre>
    <div class="buttons"><button id="confirm-cancel" value="cancel">cancel</button>
    <button id="confirm-ok" value="ok">confirm</button></div>
  </form>
</dialog>
<p id="toast" role="alert" hidden></p>
<script id="cfg" type="application/json">${scriptJson({ write, user: options.user ?? null, csrf: options.csrf ?? null })}</script>
<script>${SCRIPT}${FLAGS_SCRIPT}</script>
</body>
</html>
`
}

const STYLE = `
  :root { font: 14px/1.4 system-ui, sans-serif; color: #1d2433; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1280px; padding: 12px 16px; }
  header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 16px; }
  h1 { font-size: 20px; margin: 0; }
  h2 { font-size: 16px; margin: 20px 0 8px; }
  h3 { font-size: 14px; margin: 12px 0 4px; }
  .sr { position: absolute; left: -9999px; }
  .badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e3e7ee; white-space: nowrap; }
  .live, .ok { background: #d7f5dd; } .down, .bad { background: #fbd9d9; } .stale, .warn { background: #fdf0c4; }
  .unk { background: #e3e7ee; }
  .toolbar { display: flex; gap: 8px; margin: 12px 0 4px; }
  #filter { flex: 1; min-width: 0; font: inherit; padding: 4px 8px; }
  table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 8px; }
  table.fixed { table-layout: fixed; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e3e7ee; vertical-align: top;
    overflow-wrap: anywhere; word-break: break-word; }
  th { font-size: 12px; color: #5b6478; font-weight: 600; }
  tr.svc:hover { background: #f0f3f8; }
  td.detail { padding: 0 0 8px 24px; background: #fafbfc; }
  .mono { font-family: ui-monospace, monospace; font-size: 13px; }
  .muted { color: #6b7489; }
  .odd { color: #a4262c; font-family: ui-monospace, monospace; }
  .odd::before { content: "⚠ "; }
  .error { color: #a4262c; min-height: 1.4em; margin: 4px 0; }
  button { font: inherit; font-size: 12px; padding: 2px 8px; cursor: pointer; }
  button.toggle { border: 0; background: none; font-weight: 600; text-align: left; padding: 0; font-size: 14px;
    overflow-wrap: anywhere; }
  button:focus-visible, input:focus-visible, textarea:focus-visible { outline: 2px solid #2f6fde; outline-offset: 1px; }
  pre.value { margin: 0; white-space: pre-wrap; max-height: 8.5em; overflow: auto; }
  pre.diff { white-space: pre-wrap; background: #fff; padding: 8px; border: 1px solid #e3e7ee; max-height: 40vh;
    overflow: auto; font-family: ui-monospace, monospace; font-size: 13px; }
  pre.diff:empty { display: none; }
  .add { background: #e3f7e6; display: block; } .del { background: #fde4e4; display: block; }
  dialog { width: min(720px, 92vw); border: 1px solid #c5ccd8; border-radius: 6px; }
  dialog label { display: block; margin: 6px 0; }
  dialog input:not([type=checkbox]) { width: 100%; box-sizing: border-box; font: inherit; }
  dialog textarea { width: 100%; box-sizing: border-box; font-size: 13px; }
  .buttons { display: flex; justify-content: flex-end; gap: 8px; }
  #toast { position: fixed; bottom: 12px; left: 50%; transform: translateX(-50%); background: #1d2433; color: #fff;
    padding: 8px 14px; border-radius: 6px; max-width: 90vw; overflow-wrap: anywhere; }
  .section-error { color: #a4262c; }
  @media (max-width: 800px) {
    body { padding: 8px; }
    col.wide-only, th.wide-only, td.wide-only { display: none; }
  }
`

// The client script: plain JavaScript (String.raw keeps its backslashes as written).
const SCRIPT = String.raw`
'use strict';
const CFG = JSON.parse(document.getElementById('cfg').textContent);
const WRITE = CFG.write === true;
const token = new URLSearchParams(location.search).get('token');
const $ = (id) => document.getElementById(id);

// ---- values from etcd: shown as text whatever their type ----
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v) => (typeof v === 'string' ? v : undefined);
function json(v) { try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (e) { return '[unreadable]'; } }
/** Any value as HTML: strings and numbers as text, anything else marked as an unexpected type. */
function text(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return esc(v);
  if (typeof v === 'number' || typeof v === 'boolean') return esc(String(v));
  return '<span class="odd" title="unexpected type: ' + (Array.isArray(v) ? 'array' : typeof v) + '">' + esc(json(v)) + '</span>';
}
const odd = (v, why) => '<span class="odd" title="' + esc(why) + '">' + esc(json(v)) + '</span>';
function timeOf(iso) { const t = typeof iso === 'string' ? Date.parse(iso) : NaN; return Number.isNaN(t) ? undefined : t; }
const clock = (t) => new Date(t).toLocaleTimeString();

// ---- state ----
let snap;              // the last snapshot, normalised
let groups = [];       // services: { name, rows, zones, versions }
const ttls = new Map(); // lease -> { ttl, at }
const expanded = new Set();
let limit = 250;       // services rendered at once (more on demand)
let query = [];
let freshness = { stale: false };
let connection = 'connecting';
let failure;

/** A snapshot row as the renderer uses it: each field of the expected type or replaced. */
function row(r) {
  const o = isObj(r) ? r : {};
  const md = isObj(o.metadata) ? o.metadata : {};
  const p = isObj(o.process) ? o.process : undefined;
  const out = {
    service: str(o.service) ?? '(unreadable)', address: str(o.address) ?? '', key: str(o.key) ?? '',
    lease: str(o.lease) ?? '', weight: typeof o.weight === 'number' && Number.isFinite(o.weight) ? o.weight : undefined,
    md, badMd: o.metadata !== undefined && !isObj(o.metadata) ? o.metadata : undefined, process: p,
    modRevision: str(o.modRevision) ?? '', dialect: str(o.dialect) ?? '',
  };
  const meta = Object.keys(md).filter((k) => !['version', 'zone', 'tags', 'weight'].includes(k)).map((k) => k + '=' + json(md[k])).join(' ');
  out.f = {
    service: out.service.toLowerCase(), address: out.address.toLowerCase(),
    version: json(md.version).toLowerCase(), zone: json(md.zone).toLowerCase(), tag: json(md.tags).toLowerCase(),
    meta: meta.toLowerCase(), process: p ? json(p).toLowerCase() : 'unknown', dialect: out.dialect.toLowerCase(),
  };
  out.hay = Object.values(out.f).join(' ') + ' ' + out.lease;
  return out;
}
/** A registry key whose value is no registration: listed in its service, marked unreadable. */
function unreadableRow(u) {
  const o = isObj(u) ? u : {};
  const key = str(o.key) ?? '';
  const service = str(o.service) ?? '(unreadable)';
  const i = key.indexOf(service + '/');
  const address = i >= 0 ? key.slice(i + service.length + 1) : key;
  const r = { service, address, key, lease: '', weight: undefined, md: {}, process: undefined, modRevision: '', dialect: str(o.dialect) ?? '',
    bad: { value: str(o.value) ?? json(o.value), reason: str(o.reason) ?? '' } };
  r.f = { service: service.toLowerCase(), address: address.toLowerCase(), version: '', zone: '', tag: '', meta: r.bad.value.toLowerCase(), process: '', dialect: r.dialect.toLowerCase() };
  r.hay = Object.values(r.f).join(' ') + ' unreadable';
  return r;
}
function normalise(s) {
  const o = isObj(s) ? s : {};
  const at = timeOf(o.at) ?? Date.now();
  const services = (Array.isArray(o.services) ? o.services : []).map(row)
    .concat((Array.isArray(o.unreadable) ? o.unreadable : []).map(unreadableRow));
  const drains = new Map();
  for (const d of Array.isArray(o.drains) ? o.drains : []) if (isObj(d) && typeof d.key === 'string') drains.set(d.key, d);
  const dialects = (Array.isArray(o.dialects) ? o.dialects : []).filter((d) => typeof d === 'string');
  return { at, services, drains, dialects, queues: Array.isArray(o.queues) ? o.queues : [], config: Array.isArray(o.config) ? o.config : [],
    flags: Array.isArray(o.flags) ? o.flags : [] };
}
function takeTtls(s) {
  const at = timeOf(s.at) ?? Date.now();
  const put = (lease, ttl) => setTtl(lease, ttl, at);
  for (const r of Array.isArray(s.services) ? s.services : []) if (isObj(r)) put(r.lease, r.ttl);
  for (const q of Array.isArray(s.queues) ? s.queues : []) if (isObj(q) && Array.isArray(q.contenders))
    for (const c of q.contenders) if (isObj(c)) put(c.lease, c.ttl);
}
/** Keeps the newest reading of each lease (a snapshot and a TTL round may arrive in either order). */
function setTtl(lease, ttl, at) {
  if (typeof lease !== 'string' || !lease) return;
  const e = ttls.get(lease);
  if (!e || e.at <= at) ttls.set(lease, { ttl: typeof ttl === 'number' && Number.isFinite(ttl) ? ttl : null, at });
}
/** Seconds left on a lease now, -1 when gone, null when unknown. */
function ttlLeft(lease) {
  const e = ttls.get(lease);
  if (!e || e.ttl === null) return null;
  if (e.ttl < 0) return -1;
  return Math.max(0, Math.round(e.ttl - (Date.now() - e.at) / 1000));
}
function ttlText(lease) {
  if (!lease) return '<span class="muted">no lease</span>';
  const t = ttlLeft(lease);
  return t === null ? '?' : t < 0 ? '<span class="badge bad">expired</span>' : t + ' s';
}
function health(r) {
  if (r.bad) return { cls: 'bad', label: 'unreadable' };
  if (!r.lease) return { cls: 'warn', label: 'no lease' };
  const t = ttlLeft(r.lease);
  if (t === -1) return { cls: 'bad', label: 'lease expired' };
  if (r.weight === 0) return { cls: 'warn', label: 'draining' };
  if (!r.process) return { cls: 'unk', label: 'live, owner unknown' };
  return { cls: 'ok', label: 'healthy' };
}
function group(services) {
  const by = new Map();
  for (const r of services) { let g = by.get(r.service); if (!g) by.set(r.service, (g = { name: r.service, rows: [] })); g.rows.push(r); }
  for (const g of by.values()) {
    g.zones = [...new Set(g.rows.map((r) => r.md.zone).filter((z) => z !== undefined).map((z) => (typeof z === 'string' ? z : json(z))))].sort();
    g.dialects = dialectsOf(g.rows);
    g.versions = [...new Set(g.rows.map((r) => r.md.version).filter((v) => v !== undefined).map((v) => (typeof v === 'string' ? v : json(v))))].sort();
  }
  return [...by.values()];
}

// ---- registry dialects: each instance's, and the selector showing one dialect's services ----
let dialect = '';      // the dialect selected ('' for all)
/** The dialects of these rows, in the order the server reads them (unknown ones last). */
function dialectsOf(rows) {
  const order = snap && snap.dialects ? snap.dialects : [];
  const seen = [...new Set(rows.map((r) => r.dialect).filter(Boolean))];
  const rank = (d) => { const i = order.indexOf(d); return i < 0 ? order.length : i; };
  return seen.sort((a, b) => rank(a) - rank(b));
}
/** Whether a row is of the dialect selected. */
function inDialect(r) { return !dialect || r.dialect === dialect; }
/** The selector's options: every dialect with instances, and the one selected even when it has none left. */
function renderDialectSelect() {
  const el = $('dialect');
  const present = dialectsOf(snap.services);
  if (dialect && !present.includes(dialect)) present.push(dialect);
  const html = '<option value="">all dialects</option>' + present.map((d) => '<option value="' + esc(d) + '">' + esc(d) + '</option>').join('');
  if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; }
  el.value = dialect;
}
/** Actions address keys under the registry prefix (the etcd dialect's): other dialects' rows have none. */
function actionable(r) { return !r.dialect || r.dialect === 'etcd'; }
$('dialect').addEventListener('change', () => { dialect = $('dialect').value; limit = 250; render(); });

// ---- filter: words match anywhere; field:value matches one field ----
const FIELDS = { service: 'service', svc: 'service', address: 'address', addr: 'address', version: 'version', zone: 'zone',
  tag: 'tag', tags: 'tag', meta: 'meta', metadata: 'meta', process: 'process', host: 'process', health: 'health', is: 'health',
  dialect: 'dialect' };
function parseQuery(q) {
  return q.toLowerCase().split(/\s+/).filter(Boolean).map((w) => {
    const m = /^([a-z]+):(.*)$/.exec(w);
    return m && FIELDS[m[1]] ? { field: FIELDS[m[1]], value: m[2] } : { value: w };
  });
}
function matches(r) {
  for (const t of query) {
    if (t.field === 'health') { if (!health(r).label.includes(t.value)) return false; }
    else if (t.field) { if (!r.f[t.field].includes(t.value)) return false; }
    else if (!r.hay.includes(t.value)) return false;
  }
  return true;
}

// ---- sections: each renders on its own; one that throws says so and the others go on ----
const shownHtml = new Map();
function section(id, fn) {
  const el = $(id);
  try {
    const html = fn();
    if (shownHtml.get(id) !== html) {
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.fid : undefined;
      el.innerHTML = html;
      shownHtml.set(id, html);
      if (focused) { const again = el.querySelector('[data-fid="' + CSS.escape(focused) + '"]'); if (again) again.focus(); }
    }
    // TTL cells are left out of the markup (it would change every second and rebuild the section under
    // the operator's pointer): filled here, and each second by tick()
    for (const td of el.querySelectorAll('td.ttl')) td.innerHTML = ttlText(td.dataset.lease);
  } catch (err) {
    el.innerHTML = '<p class="section-error">this section could not be shown: ' + esc(err && err.message ? err.message : String(err)) + '</p>';
    shownHtml.delete(id);
    console.error(err);
  }
}
function who(p) {
  if (!p) return '<span class="muted" title="no session record: etcdctl, a Go client, or a kit without records">not an etcdkit</span>';
  const parts = [];
  const svc = [str(p.service), str(p.address)].filter(Boolean).join('@');
  if (svc) parts.push(esc(svc));
  if (p.hostname !== undefined) parts.push(text(p.hostname));
  if (p.pid !== undefined) parts.push('pid ' + text(p.pid));
  const since = timeOf(p.startedAt);
  if (since !== undefined) parts.push('since ' + esc(new Date(since).toLocaleString()));
  else if (p.startedAt !== undefined) parts.push('since ' + text(p.startedAt));
  return parts.join(' · ');
}
function tagsOf(md) {
  if (md.tags === undefined) return '';
  if (!Array.isArray(md.tags)) return odd(md.tags, 'tags should be an array of strings');
  return md.tags.map(text).join(', ');
}
function metaOf(r) {
  if (r.badMd !== undefined) return odd(r.badMd, 'metadata should be an object');
  return Object.keys(r.md).filter((k) => !['version', 'zone', 'tags', 'weight'].includes(k))
    .map((k) => '<span class="kv"><span class="muted">' + esc(k) + '=</span>' + text(typeof r.md[k] === 'object' && r.md[k] !== null ? json(r.md[k]) : r.md[k]) + '</span>').join(' ');
}
function weightOf(r) {
  if (r.md.weight !== undefined && r.md.weight !== r.weight && r.md.weight !== 0) return text(r.weight) + ' ' + odd(r.md.weight, 'unreadable weight: read as ' + r.weight);
  return r.weight === undefined ? '?' : r.weight === 0 ? '0 <span class="badge warn">draining</span>' : esc(String(r.weight));
}
function drainNote(r) {
  const d = snap.drains.get(r.key);
  if (!d) return '';
  const rec = isObj(d.record) ? d.record : {};
  const by = 'by ' + text(rec.writer ?? 'unknown') + (timeOf(rec.at) ? ' at ' + esc(clock(timeOf(rec.at))) : '');
  return '<div class="muted drain-note">' + (r.weight === 0 ? 'drained ' : 'drain requested ') + by + '</div>';
}
function actions(r) {
  if (!WRITE || !actionable(r)) return '';
  const b = [];
  if (r.bad) return '<button class="deregister" data-fid="' + esc('deregister:' + r.key) + '">deregister</button>';
  const fid = (a) => esc(a + ':' + r.key);
  const t = ttlLeft(r.lease);
  const drained = snap.drains.has(r.key);
  if (drained) b.push('<button class="undrain" data-fid="' + fid('undrain') + '">undrain</button>');
  else if (r.process && t !== -1 && r.lease && r.weight !== 0) b.push('<button class="drain" data-fid="' + fid('drain') + '">drain</button>');
  if (!r.process || !r.lease || t === -1) b.push('<button class="deregister" data-fid="' + fid('deregister') + '">deregister</button>');
  return b.join(' ');
}
const INSTANCE_COLS = '<colgroup><col style="width:16%"><col style="width:7%"><col style="width:8%"><col style="width:8%"><col style="width:7%">' +
  '<col style="width:8%" class="wide-only"><col style="width:15%"><col style="width:7%"><col style="width:14%"><col style="width:10%"></colgroup>';
function instanceTable(rows) {
  return '<table class="fixed instances">' + INSTANCE_COLS + '<tr><th>address</th><th>dialect</th><th>weight</th><th>version</th><th>zone</th><th class="wide-only">tags</th>' +
    '<th>metadata</th><th>lease TTL</th><th>process</th><th>' + (WRITE ? 'actions' : 'health') + '</th></tr>' +
    rows.map((r) => {
      const h = health(r);
      if (r.bad) return '<tr class="unreadable" data-address="' + esc(r.address) + '" data-key="' + esc(r.key) + '" data-dialect="' + esc(r.dialect) + '" data-health="unreadable"><td class="mono">' + esc(r.address) +
        '</td><td class="dialect">' + esc(r.dialect) + '</td><td colspan="5"><span class="odd" title="not a registration">' + esc(r.bad.value) + '</span> <span class="muted">' + esc(r.bad.reason) +
        '</span></td><td class="mono">—</td><td></td><td><span class="badge bad">unreadable</span> ' + actions(r) + '</td></tr>';
      return '<tr data-address="' + esc(r.address) + '" data-key="' + esc(r.key) + '" data-dialect="' + esc(r.dialect) + '" data-health="' + esc(h.label) + '"><td class="mono">' + esc(r.address) + drainNote(r) +
        '</td><td class="dialect">' + esc(r.dialect) + '</td><td>' + weightOf(r) + '</td><td>' + text(r.md.version) + '</td><td>' + text(r.md.zone) + '</td><td class="wide-only">' + tagsOf(r.md) +
        '</td><td class="meta mono">' + metaOf(r) + '</td><td class="ttl mono" data-lease="' + esc(r.lease) + '">' +
        '</td><td>' + who(r.process) + '</td><td><span class="badge ' + h.cls + '">' + esc(h.label) + '</span> ' + actions(r) + '</td></tr>';
    }).join('') + '</table>';
}
function renderServices() {
  if (!snap) return '';
  if (groups.length === 0) return '<p class="muted">no services registered</p>';
  const shown = [];
  let instances = 0;
  for (const g of groups) {
    const rows = query.length || dialect ? g.rows.filter((r) => inDialect(r) && matches(r)) : g.rows;
    if (rows.length) { shown.push({ g, rows }); instances += rows.length; }
  }
  const total = snap.services.length;
  $('counts').textContent = groups.length + ' services · ' + total + ' instances' +
    (dialect ? ' · ' + dialect + ': ' + shown.length + ' services' : '') +
    (query.length ? ' · ' + shown.length + ' services and ' + instances + ' instances match' : '');
  if (shown.length === 0) return '<p class="muted">nothing matches the filter</p>';
  const auto = query.length > 0 && shown.length <= 5;
  let html = '<table class="fixed services"><colgroup><col style="width:26%"><col style="width:10%"><col style="width:14%"><col style="width:20%"><col style="width:15%"><col style="width:15%"></colgroup>' +
    '<tr><th>service</th><th>instances</th><th>dialects</th><th>health</th><th>zones</th><th>versions</th></tr>';
  for (const { g, rows } of shown.slice(0, limit)) {
    const open = auto || expanded.has(g.name);
    const counts = {};
    for (const r of dialect ? g.rows.filter(inDialect) : g.rows) { const h = health(r); counts[h.cls + '|' + h.label] = (counts[h.cls + '|' + h.label] || 0) + 1; }
    const worst = g.rows.every((r) => health(r).cls === 'bad') ? 'bad' : Object.keys(counts).some((k) => !k.startsWith('ok|') && !k.startsWith('unk|')) ? 'warn' : 'ok';
    html += '<tr class="svc" data-service="' + esc(g.name) + '" data-health="' + worst + '"><td><button class="toggle" type="button" aria-expanded="' + open + '" data-fid="svc:' + esc(g.name) +
      '">' + (open ? '▾ ' : '▸ ') + esc(g.name) + '</button></td><td class="count">' + (rows.length === g.rows.length ? g.rows.length : rows.length + ' of ' + g.rows.length) +
      '</td><td class="dialects">' + esc(dialectsOf(rows).join(', ')) + '</td><td>' + Object.entries(counts).map(([k, n]) => '<span class="badge ' + k.split('|')[0] + '">' + n + ' ' + esc(k.split('|')[1]) + '</span>').join(' ') +
      '</td><td>' + esc(g.zones.join(', ')) + '</td><td>' + esc(g.versions.join(', ')) + '</td></tr>';
    if (open) html += '<tr class="detail-row" data-detail="' + esc(g.name) + '"><td class="detail" colspan="6">' + instanceTable(rows) + '</td></tr>';
  }
  html += '</table>';
  if (shown.length > limit) html += '<button id="more" type="button" data-fid="more">show ' + Math.min(250, shown.length - limit) + ' more of ' + (shown.length - limit) + ' services</button>';
  return html;
}
function renderQueues() {
  if (!snap) return '';
  const qs = snap.queues.filter(isObj);
  if (qs.length === 0) return '<p class="muted">no locks held, no elections</p>';
  return '<table class="fixed"><colgroup><col style="width:20%"><col style="width:8%"><col style="width:10%"><col style="width:14%"><col style="width:8%"><col style="width:8%"><col style="width:20%"><col style="width:12%"></colgroup>' +
    '<tr><th>name</th><th>kind</th><th>role</th><th>lease</th><th>TTL</th><th>revision</th><th>process</th><th>proposal</th></tr>' +
    qs.map((q) => (Array.isArray(q.contenders) ? q.contenders : []).filter(isObj).map((c, i) => '<tr data-lock="' + esc(str(q.name) ?? '') + '" data-role="' + (i === 0 ? 'holder' : 'waiter') + '">' +
      '<td class="mono">' + (i === 0 ? text(q.name) : '') + '</td><td>' + text(q.kind) + '</td><td>' + (i === 0 ? (q.kind === 'lock' ? 'holder' : 'leader') : 'waiting #' + i) +
      '</td><td class="mono">' + text(c.lease) + '</td><td class="ttl mono" data-lease="' + esc(str(c.lease) ?? '') + '"></td><td class="mono">' + text(c.createRevision) +
      '</td><td>' + who(isObj(c.process) ? c.process : undefined) + '</td><td class="mono">' + text(c.value) + '</td></tr>').join('')).join('') + '</table>';
}
function renderConfig() {
  if (!snap) return '';
  const words = query.filter((t) => !t.field).map((t) => t.value);
  const all = snap.config.filter(isObj);
  const entries = words.length ? all.filter((e) => words.every((w) => (json(e.key) + ' ' + json(e.value) + ' ' + json(e.service)).toLowerCase().includes(w))) : all;
  if (all.length === 0) return '<p class="muted">no configuration</p>';
  if (entries.length === 0) return '<p class="muted">no key matches the filter</p>';
  return '<table class="fixed"><colgroup><col style="width:24%"><col style="width:16%"><col style="width:40%"><col style="width:20%"></colgroup><tr><th>key</th><th>scope</th><th>value</th><th></th></tr>' +
    entries.map((e) => '<tr data-config-key="' + esc(str(e.key) ?? '') + '" data-service="' + esc(str(e.service) ?? '') + '"><td class="mono">' + text(e.key) + '</td><td>' +
      (e.service !== undefined ? 'override for ' + text(e.service) : 'shared') + '</td><td><pre class="mono value">' + text(e.value) + '</pre></td><td>' +
      '<button class="history" data-fid="history:' + esc(str(e.key) ?? '') + '">history</button>' +
      (WRITE ? ' <button class="edit" data-fid="edit:' + esc(str(e.key) ?? '') + '">edit</button> <button class="delete">delete</button>' : '') + '</td></tr>').join('') + '</table>';
}
function renderStatus() {
  const s = $('status');
  if (connection !== 'open') { s.textContent = connection === 'connecting' ? 'connecting' : 'disconnected · reconnecting'; s.className = 'badge down'; s.title = 'the console server is not answering'; }
  else if (freshness.stale) { s.textContent = 'stale since ' + clock(timeOf(freshness.since) ?? Date.now()); s.className = 'badge stale'; s.title = str(freshness.reason) ?? ''; }
  else if (failure) { s.textContent = 'etcd: ' + failure; s.className = 'badge down'; s.title = failure; }
  else { s.textContent = 'live'; s.className = 'badge live'; s.title = ''; }
}
function render() {
  renderStatus();
  if (!snap) return;
  $('updated').textContent = 'updated ' + clock(snap.at);
  renderDialectSelect();
  section('services', renderServices);
  section('queues', renderQueues);
  section('config', renderConfig);
  section('flags', renderFlags);
}
function take(raw) {
  takeTtls(isObj(raw) ? raw : {});
  snap = normalise(raw);
  groups = group(snap.services);
}

// ---- the API ----
function headers(extra) {
  const h = Object.assign({}, extra);
  if (token) h.authorization = 'Bearer ' + token;
  if (CFG.csrf) h['x-etcdkit-csrf'] = CFG.csrf;
  return h;
}
let toastTimer;
function toast(msg) { const t = $('toast'); t.textContent = msg; t.hidden = false; clearTimeout(toastTimer); toastTimer = setTimeout(() => { t.hidden = true; }, 6000); }
async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, { method, headers: headers({ 'content-type': 'application/json' }), body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) { toast(method + ' ' + path + ' failed: ' + err.message); return undefined; }
  const out = await res.json().catch(() => ({}));
  if (!res.ok) { toast(method + ' failed: ' + (str(out.error) ?? res.status)); return undefined; }
  return out;
}
/** Asks in a modal dialog; resolves true when confirmed. */
function ask(title, message, detail) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = message;
  $('confirm-detail').innerHTML = detail || '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// ---- line diff (longest common subsequence; large values are compared as wholes) ----
function diff(a, b) {
  const x = String(a).split('\n'), y = String(b).split('\n');
  if (x.length * y.length > 4e6) return '<span class="del">- ' + esc(a) + '</span><span class="add">+ ' + esc(b) + '</span>';
  const n = x.length, m = y.length, L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  let i = 0, j = 0, out = '';
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out += '  ' + esc(x[i]) + '\n'; i++; j++; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { out += '<span class="add">+ ' + esc(y[j]) + '</span>'; j++; }
    else { out += '<span class="del">- ' + esc(x[i]) + '</span>'; i++; }
  }
  return out;
}

// ---- services: expand, drain, deregister ----
$('services').addEventListener('click', async (ev) => {
  const t = ev.target.closest('button');
  if (!t) return;
  if (t.id === 'more') { limit += 250; render(); return; }
  if (t.classList.contains('toggle')) {
    const name = t.closest('tr.svc').dataset.service;
    if (expanded.has(name)) expanded.delete(name); else expanded.add(name);
    render();
    return;
  }
  const tr = t.closest('tr[data-key]');
  if (!tr) return;
  const r = snap.services.find((x) => x.key === tr.dataset.key);
  if (!r) return;
  if (t.classList.contains('drain')) {
    if (await ask('Drain ' + r.address, 'Ask the process that owns ' + r.key + ' to take it out of traffic: it writes weight 0 itself. Recorded as ' + (CFG.user || 'you') + '.'))
      if (await api('POST', '/api/drain', { key: r.key })) toast('drain requested: ' + r.key);
  } else if (t.classList.contains('undrain')) {
    if (await ask('Undrain ' + r.address, 'Withdraw the drain request on ' + r.key + ': its owner restores the weight it registered with.'))
      if (await api('DELETE', '/api/drain', { key: r.key })) toast('drain withdrawn: ' + r.key);
  } else if (t.classList.contains('deregister')) {
    const why = r.bad ? 'its value is not a registration' : r.process ? 'its owner is gone' : 'no etcdkit owns it';
    if (await ask('Deregister ' + r.address, 'Delete the registration key ' + r.key + ' (' + why + '). Refused if the key changed meanwhile.'))
      if (await api('POST', '/api/deregister', r.bad ? { key: r.key, value: r.bad.value } : { key: r.key, modRevision: r.modRevision })) toast('deregistered: ' + r.key);
  }
});

// ---- config: edit in a real editor, delete, history ----
let editing;
function openEditor(key, service, value, isNew) {
  editing = { key, service, old: value, isNew };
  $('editor-title').textContent = isNew ? 'New config key' : 'Edit ' + key + (service ? ' (override for ' + service + ')' : '');
  $('editor-key').value = key; $('editor-key').readOnly = !isNew;
  $('editor-service').value = service || ''; $('editor-service').readOnly = !isNew;
  let looksJson = false;
  try { const v = JSON.parse(value); looksJson = v !== null && typeof v === 'object'; } catch (e) { looksJson = false; }
  $('editor-json').checked = looksJson;
  $('editor-value').value = value;
  validate();
  $('editor').showModal();
  (isNew ? $('editor-key') : $('editor-value')).focus();
}
function validate() {
  const e = $('editor-error');
  e.textContent = '';
  if (editing && editing.isNew && !$('editor-key').value.trim()) { e.textContent = 'a key is needed'; $('editor-save').disabled = true; return false; }
  if ($('editor-json').checked) {
    try { JSON.parse($('editor-value').value); } catch (err) { e.textContent = 'not valid JSON: ' + err.message; $('editor-save').disabled = true; return false; }
  }
  $('editor-save').disabled = false;
  return true;
}
for (const id of ['editor-value', 'editor-json', 'editor-key']) $(id).addEventListener('input', validate);
$('editor-cancel').addEventListener('click', () => $('editor').close());
$('editor-save').addEventListener('click', async () => {
  if (!validate()) return;
  const key = $('editor-key').value.trim(), service = $('editor-service').value.trim();
  const value = $('editor-value').value;
  $('editor').close();
  const ok = await ask('Write ' + key, 'Write ' + value.length + ' characters to ' + key + (service ? ' (override for ' + service + ')' : '') + ', recorded as ' + (CFG.user || 'you') + '?', diff(editing.old, value));
  if (!ok) { $('editor').showModal(); return; }
  if (await api('PUT', '/api/config', { key, value, service: service || undefined })) toast('written: ' + key);
});
if (WRITE && $('config-new')) $('config-new').addEventListener('click', () => openEditor('', '', '', true));
$('config').addEventListener('click', async (ev) => {
  const b = ev.target.closest('button');
  const row = ev.target.closest('tr[data-config-key]');
  if (!b || !row) return;
  const key = row.dataset.configKey;
  const entry = snap.config.find((e) => isObj(e) && e.key === key);
  const service = entry && typeof entry.service === 'string' ? entry.service : '';
  // an override's key is stored as {service}/{key}: the API takes the key within the service
  const own = service && key.startsWith(service + '/') ? key.slice(service.length + 1) : key;
  if (b.classList.contains('edit')) openEditor(own, service, entry ? String(entry.value) : '', false);
  else if (b.classList.contains('delete')) {
    if (await ask('Delete ' + key, 'Delete the config key ' + key + '? Its history stays readable in etcd until compaction.'))
      if (await api('DELETE', '/api/config', { key: own, service: service || undefined })) toast('deleted: ' + key);
  } else if (b.classList.contains('history')) await showHistory(own, service);
});
let history;
async function showHistory(key, service) {
  history = { key, service, entries: [] };
  const q = '?key=' + encodeURIComponent(key) + (service ? '&service=' + encodeURIComponent(service) : '');
  const res = await fetch('/api/config/history' + q, { headers: headers() });
  const entries = await res.json().catch(() => ({ error: 'unreadable answer' }));
  $('history-key').textContent = (service ? service + '/' : '') + key;
  $('diff').innerHTML = ''; $('diff-title').textContent = '';
  if (!res.ok || !Array.isArray(entries)) { $('history-table').innerHTML = '<tr><td>' + text(entries.error ?? res.status) + '</td></tr>'; $('history').hidden = false; return; }
  history.entries = entries.filter(isObj);
  $('history-table').innerHTML = '<colgroup><col style="width:10%"><col style="width:20%"><col style="width:24%"><col style="width:26%"><col style="width:20%"></colgroup>' +
    '<tr><th>revision</th><th>time</th><th>writer</th><th>value</th><th></th></tr>' +
    history.entries.map((e, i) => {
      const w = isObj(e.writer) ? e.writer : undefined;
      return '<tr data-revision="' + esc(str(e.revision) ?? '') + '"><td class="mono">' + text(e.revision) + '</td><td>' + (timeOf(e.time) ? esc(new Date(timeOf(e.time)).toLocaleString()) : '') +
        '</td><td>' + (w ? [text(w.writer), text(w.hostname), w.pid !== undefined ? 'pid ' + text(w.pid) : ''].filter(Boolean).join(' · ') : '<span class="muted">unknown</span>') +
        '</td><td><pre class="mono value">' + (e.deleted ? '<span class="muted">(deleted)</span>' : text(e.value)) + '</pre></td><td>' +
        (i + 1 < history.entries.length ? '<button class="diff-prev">diff with previous</button> ' : '') +
        (i > 0 ? '<button class="diff-current">diff with current</button> ' : '<span class="muted">current</span> ') +
        (WRITE && i > 0 && !e.deleted ? '<button class="rollback">roll back to this</button>' : '') + '</td></tr>';
    }).join('');
  $('history').hidden = false;
  if (history.entries.length > 1) showDiff(1, 0);
}
function valueOf(e) { return e.deleted ? '' : typeof e.value === 'string' ? e.value : json(e.value); }
function showDiff(from, to) {
  const a = history.entries[from], b = history.entries[to];
  $('diff-title').textContent = 'revision ' + (str(a.revision) ?? '?') + ' → ' + (str(b.revision) ?? '?');
  $('diff').innerHTML = diff(valueOf(a), valueOf(b));
}
$('history-close').addEventListener('click', () => { $('history').hidden = true; });
$('history-table').addEventListener('click', async (ev) => {
  const b = ev.target.closest('button');
  const tr = ev.target.closest('tr[data-revision]');
  if (!b || !tr) return;
  const i = history.entries.findIndex((e) => e.revision === tr.dataset.revision);
  if (b.classList.contains('diff-prev')) showDiff(i + 1, i);
  else if (b.classList.contains('diff-current')) showDiff(0, i);
  else if (b.classList.contains('rollback')) {
    const cur = history.entries[0], target = history.entries[i];
    if (!(await ask('Roll back ' + history.key, 'Write the value of revision ' + target.revision + ' back to ' + history.key + '? Refused if the key changed since revision ' + cur.revision + '.', diff(valueOf(cur), valueOf(target))))) return;
    if (await api('POST', '/api/config/rollback', { key: history.key, service: history.service || undefined, revision: target.revision, expect: cur.revision })) {
      toast('rolled back: ' + history.key);
      await showHistory(history.key, history.service);
    }
  }
});

// ---- filter and keyboard ----
let filterTimer;
$('filter').addEventListener('input', () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => { query = parseQuery($('filter').value); limit = 250; render(); }, 80);
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === '/' && !(ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement)) { ev.preventDefault(); $('filter').focus(); }
});
$('expand-all').addEventListener('click', () => { for (const g of groups.slice(0, limit)) expanded.add(g.name); render(); });
$('collapse-all').addEventListener('click', () => { expanded.clear(); render(); });
if (CFG.user) $('identity').textContent = WRITE ? 'writes as ' + CFG.user : '';

// ---- the live stream: reconnects by itself; silence for 15 s counts as a dropped stream ----
let es, lastHeard = 0, retry = 500;
function connect() {
  if (es) es.close();
  es = new EventSource('/api/events' + (token ? '?token=' + encodeURIComponent(token) : ''));
  const heard = () => { lastHeard = Date.now(); retry = 500; if (connection !== 'open') { connection = 'open'; renderStatus(); } };
  es.addEventListener('open', heard);
  es.addEventListener('ping', heard);
  es.addEventListener('snapshot', (ev) => {
    heard();
    const t0 = performance.now();
    failure = undefined;
    try { take(JSON.parse(ev.data)); } catch (err) { failure = 'unreadable snapshot'; }
    render();
    window.__lastRenderMs = performance.now() - t0;
    window.__renders = (window.__renders || 0) + 1;
  });
  es.addEventListener('ttl', (ev) => {
    heard();
    try {
      const u = JSON.parse(ev.data);
      const at = timeOf(u.at) ?? Date.now();
      if (isObj(u.ttls)) for (const [lease, ttl] of Object.entries(u.ttls)) setTtl(lease, ttl, at);
    } catch (err) { /* a bad update leaves the countdown as it was */ }
    render();
  });
  es.addEventListener('freshness', (ev) => { heard(); try { const f = JSON.parse(ev.data); freshness = isObj(f) ? f : { stale: false }; } catch (err) { freshness = { stale: false }; } renderStatus(); });
  es.addEventListener('failure', (ev) => { heard(); try { failure = String(JSON.parse(ev.data)); } catch (err) { failure = 'unknown failure'; } renderStatus(); });
  es.onerror = () => {
    connection = 'disconnected';
    renderStatus();
    if (es.readyState === EventSource.CLOSED) { setTimeout(connect, retry); retry = Math.min(retry * 2, 5000); }
  };
}
function tick() {
  for (const td of document.querySelectorAll('td.ttl')) td.innerHTML = ttlText(td.dataset.lease);
}
setInterval(() => {
  tick();
  if (connection === 'open' && Date.now() - lastHeard > 15000) { connection = 'disconnected'; renderStatus(); setTimeout(connect, 0); }
}, 1000);
connect();
`

// ---- feature flags (@etcdkit/openfeature): their own section, history and guarded rollback ----

/** The flags section and its history panel (rendered by `renderFlags` and `showFlagHistory` below). */
function flagSections(): string {
  return `<section aria-labelledby="h-flags"><h2 id="h-flags">Feature flags</h2><div id="flags"></div></section>
<section id="flag-history" hidden aria-labelledby="h-flag-history">
  <h2 id="h-flag-history">History of flag <span id="flag-history-key" class="mono"></span> <button id="flag-history-close" type="button">close</button></h2>
  <table id="flag-history-table" class="fixed"></table>
</section>`
}

// Client script for the flags: every value from etcd goes through esc()/text() (a targeting rule is shown
// as JSON text, never as markup); rollback goes through api(), which sends the anti-CSRF token.
const FLAGS_SCRIPT = String.raw`
const FLAG_STATES = { ENABLED: ['ok', 'enabled'], DISABLED: ['warn', 'disabled'] };
function pretty(v) { try { const s = JSON.stringify(v, null, 2); return s === undefined ? String(v) : s; } catch (e) { return '[unreadable]'; } }
function flagState(f) {
  const s = FLAG_STATES[f.state];
  return s ? '<span class="badge ' + s[0] + '">' + s[1] + '</span>'
    : '<span class="badge bad">invalid</span>' + (f.error !== undefined ? '<div class="odd">' + text(f.error) + '</div>' : '');
}
function renderFlags() {
  const flags = snap.flags.filter((f) => isObj(f) && typeof f.key === 'string');
  if (flags.length === 0) return '<p class="muted">no flags under flags/</p>';
  return '<table class="fixed"><colgroup><col style="width:16%"><col style="width:12%"><col style="width:10%"><col style="width:20%"><col style="width:30%"><col style="width:12%"></colgroup>' +
    '<tr><th>flag</th><th>state</th><th>default</th><th>variants</th><th>targeting</th><th></th></tr>' +
    flags.map((f) => {
      const variants = isObj(f.variants) ? Object.keys(f.variants).map((k) => esc(k) + ' = ' + esc(json(f.variants[k]))).join('<br>') : '';
      const targeting = f.state !== 'ENABLED' && f.state !== 'DISABLED' ? '<pre class="mono value">' + text(f.text) + '</pre>'
        : f.targeting === undefined ? '<span class="muted">none (default variant for everyone)</span>' : '<pre class="mono value">' + esc(pretty(f.targeting)) + '</pre>';
      return '<tr data-flag-key="' + esc(f.key) + '" data-state="' + esc(FLAG_STATES[f.state] ? f.state : 'INVALID') + '"><td class="mono">' + text(f.key) + '</td><td>' + flagState(f) +
        '</td><td class="mono">' + text(f.defaultVariant) + '</td><td class="mono">' + variants + '</td><td>' + targeting + '</td><td>' +
        '<button class="flag-history" data-fid="flag-history:' + esc(f.key) + '">history</button></td></tr>';
    }).join('') + '</table>';
}
let flagHistory;
async function showFlagHistory(key) {
  flagHistory = { key, entries: [] };
  const res = await fetch('/api/flags/history?key=' + encodeURIComponent(key), { headers: headers() });
  const entries = await res.json().catch(() => ({ error: 'unreadable answer' }));
  $('flag-history-key').textContent = key;
  if (!res.ok || !Array.isArray(entries)) { $('flag-history-table').innerHTML = '<tr><td>' + text(entries.error ?? res.status) + '</td></tr>'; $('flag-history').hidden = false; return; }
  flagHistory.entries = entries.filter(isObj);
  $('flag-history-table').innerHTML = '<colgroup><col style="width:10%"><col style="width:18%"><col style="width:20%"><col style="width:36%"><col style="width:16%"></colgroup>' +
    '<tr><th>revision</th><th>time</th><th>writer</th><th>definition</th><th></th></tr>' +
    flagHistory.entries.map((e, i) => {
      const w = isObj(e.writer) ? e.writer : undefined;
      const d = isObj(e.definition) ? e.definition : undefined;
      return '<tr data-revision="' + esc(str(e.revision) ?? '') + '"><td class="mono">' + text(e.revision) + '</td><td>' + (timeOf(e.time) ? esc(new Date(timeOf(e.time)).toLocaleString()) : '') +
        '</td><td>' + (w ? [text(w.writer), w.rollbackOf !== undefined ? 'rollback of ' + text(w.rollbackOf) : ''].filter(Boolean).join(' · ') : '<span class="muted">unknown</span>') +
        '</td><td>' + (d ? flagState(d) + ' ' : '') + '<pre class="mono value">' + text(e.value) + '</pre></td><td>' +
        (i > 0 ? '' : '<span class="muted">current</span> ') +
        (WRITE && i > 0 ? '<button class="flag-rollback">roll back to this</button>' : '') + '</td></tr>';
    }).join('');
  $('flag-history').hidden = false;
}
$('flags').addEventListener('click', async (ev) => {
  const b = ev.target.closest('button.flag-history');
  const row = ev.target.closest('tr[data-flag-key]');
  if (b && row) await showFlagHistory(row.dataset.flagKey);
});
$('flag-history-close').addEventListener('click', () => { $('flag-history').hidden = true; });
$('flag-history-table').addEventListener('click', async (ev) => {
  const b = ev.target.closest('button.flag-rollback');
  const tr = ev.target.closest('tr[data-revision]');
  if (!b || !tr || !flagHistory) return;
  const cur = flagHistory.entries[0], target = flagHistory.entries.find((e) => e.revision === tr.dataset.revision);
  if (!cur || !target) return;
  const key = flagHistory.key;
  if (!(await ask('Roll back flag ' + key, 'Write the definition of revision ' + target.revision + ' back to flag ' + key + ', recorded as ' + (CFG.user || 'you') + '? Refused if the flag changed since revision ' + cur.revision + '.', diff(str(cur.value) ?? '', str(target.value) ?? '')))) return;
  if (await api('POST', '/api/flags/rollback', { key, revision: target.revision, expect: cur.revision })) {
    toast('flag rolled back: ' + key);
    await showFlagHistory(key);
  }
});
`
