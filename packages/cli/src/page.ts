// The console's one page: plain HTML, CSS and a script, no build step. It renders each snapshot the server
// sends over server-sent events; edits go to the JSON API with a confirmation first.

export function page({ write, csrf }: { write: boolean; csrf: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="etcdkit-csrf" content="${csrf}">
<title>etcdkit console</title>
<style>
  :root { font: 14px/1.4 system-ui, sans-serif; color: #1d2433; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1200px; padding: 16px 24px; }
  header { display: flex; align-items: baseline; gap: 16px; }
  h1 { font-size: 20px; margin: 0; }
  h2 { font-size: 16px; margin: 24px 0 8px; }
  h3 { font-size: 14px; margin: 12px 0 4px; font-family: ui-monospace, monospace; }
  .badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e3e7ee; }
  .live { background: #d7f5dd; } .down { background: #fbd9d9; }
  table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 8px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e7ee; vertical-align: top; }
  th { font-size: 12px; color: #5b6478; font-weight: 600; }
  td.mono, .mono { font-family: ui-monospace, monospace; font-size: 13px; }
  .muted { color: #8a93a6; }
  button { font: inherit; font-size: 12px; padding: 2px 8px; }
</style>
</head>
<body>
<header>
  <h1>etcdkit console</h1>
  <span id="mode" class="badge">${write ? 'read-write' : 'read-only'}</span>
  <span id="status" class="badge down">connecting</span>
  <span id="updated" class="muted"></span>
</header>
<h2>Services</h2>
<div id="services"></div>
<h2>Locks and elections</h2>
<div id="queues"></div>
<h2>Configuration</h2>
<div id="config"></div>
<div id="history" hidden>
  <h2>History of <span id="history-key" class="mono"></span> <button id="history-close">close</button></h2>
  <table id="history-table"></table>
</div>
<script>
const WRITE = ${write ? 'true' : 'false'};
const token = new URLSearchParams(location.search).get('token');
const headers = token ? { authorization: 'Bearer ' + token } : {};
let snapshot;
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const who = (p) => p === 'unknown' ? '<span class="muted">unknown</span>'
  : esc([[p.service, p.address].filter(Boolean).join('@'), p.hostname, p.pid && 'pid ' + p.pid].filter(Boolean).join(' · '));
function ttl(row) {
  if (!row.lease) return 'no lease';
  if (row.ttl === undefined || row.ttl === null) return '?';
  const left = Math.max(0, Math.round(row.ttl - (Date.now() - Date.parse(snapshot.at)) / 1000));
  return row.ttl < 0 ? 'expired' : left + 's';
}
function render() {
  if (!snapshot) return;
  document.getElementById('updated').textContent = 'updated ' + new Date(snapshot.at).toLocaleTimeString();
  const bySvc = new Map();
  for (const r of snapshot.services) { if (!bySvc.has(r.service)) bySvc.set(r.service, []); bySvc.get(r.service).push(r); }
  document.getElementById('services').innerHTML = bySvc.size === 0 ? '<p class="muted">no services registered</p>' :
    [...bySvc].map(([svc, rows]) => '<h3 data-service="' + esc(svc) + '">' + esc(svc) + ' <span class="muted">(' + rows.length + ')</span></h3>' +
      '<table><tr><th>address</th><th>weight</th><th>version</th><th>zone</th><th>tags</th><th>lease TTL</th><th>process</th></tr>' +
      rows.map((r) => '<tr data-address="' + esc(r.address) + '"><td class="mono">' + esc(r.address) + '</td><td>' + r.weight + '</td><td>' +
        esc(r.metadata.version) + '</td><td>' + esc(r.metadata.zone) + '</td><td>' + esc((r.metadata.tags || []).join(', ')) +
        '</td><td class="ttl mono" data-lease="' + esc(r.lease) + '">' + ttl(r) + '</td><td>' + who(r.process) + '</td></tr>').join('') + '</table>').join('');
  document.getElementById('queues').innerHTML = snapshot.queues.length === 0 ? '<p class="muted">no locks held, no elections</p>' :
    '<table><tr><th>name</th><th>kind</th><th>role</th><th>lease</th><th>revision</th><th>process</th><th>proposal</th></tr>' +
    snapshot.queues.map((q) => q.contenders.map((c, i) => '<tr data-lock="' + esc(q.name) + '" data-role="' + (i === 0 ? 'holder' : 'waiter') + '">' +
      '<td class="mono">' + (i === 0 ? esc(q.name) : '') + '</td><td>' + q.kind + '</td><td>' + (i === 0 ? (q.kind === 'lock' ? 'holder' : 'leader') : 'waiting #' + i) +
      '</td><td class="mono">' + esc(c.lease) + '</td><td class="mono">' + esc(c.createRevision) + '</td><td>' + who(c.process) + '</td><td class="mono">' + esc(c.value) + '</td></tr>').join('')).join('') + '</table>';
  document.getElementById('config').innerHTML = snapshot.config.length === 0 ? '<p class="muted">no configuration</p>' :
    '<table><tr><th>key</th><th>scope</th><th>value</th><th></th></tr>' +
    snapshot.config.map((e) => '<tr data-config-key="' + esc(e.key) + '"><td class="mono">' + esc(e.key) + '</td><td>' + (e.service ? 'override for ' + esc(e.service) : 'shared') +
      '</td><td class="mono value">' + esc(e.value) + '</td><td>' + '<button class="history">history</button>' + (WRITE ? ' <button class="edit">edit</button> <button class="delete">delete</button>' : '') + '</td></tr>').join('') + '</table>';
}
async function api(method, path, body) {
  const csrf = document.querySelector('meta[name="etcdkit-csrf"]').content;
  const res = await fetch(path, { method, headers: { ...headers, 'content-type': 'application/json', 'x-etcdkit-csrf': csrf }, body: JSON.stringify(body) });
  const out = await res.json().catch(() => ({}));
  if (!res.ok) alert(method + ' failed: ' + (out.error || res.status));
  return out;
}
document.getElementById('config').addEventListener('click', async (ev) => {
  const row = ev.target.closest('tr[data-config-key]');
  if (!row) return;
  const key = row.dataset.configKey;
  if (ev.target.classList.contains('edit')) {
    const value = prompt('New value of ' + key, row.querySelector('.value').textContent);
    if (value === null || !confirm('Write ' + JSON.stringify(value) + ' to ' + key + '?')) return;
    await api('PUT', '/api/config', { key, value });
  } else if (ev.target.classList.contains('delete')) {
    if (confirm('Delete ' + key + '?')) await api('DELETE', '/api/config', { key });
  } else if (ev.target.classList.contains('history')) {
    await showHistory(key);
  }
});
let historyKey;
async function showHistory(key) {
  historyKey = key;
  const res = await fetch('/api/config/history?key=' + encodeURIComponent(key), { headers });
  const entries = await res.json();
  document.getElementById('history-key').textContent = key;
  document.getElementById('history-table').innerHTML = !res.ok ? '<tr><td>' + esc(entries.error) + '</td></tr>' :
    '<tr><th>revision</th><th>time</th><th>writer</th><th>value</th><th></th></tr>' +
    entries.map((e, i) => '<tr data-revision="' + esc(e.revision) + '"><td class="mono">' + esc(e.revision) + '</td><td>' +
      esc(e.time ? new Date(e.time).toLocaleString() : '') + '</td><td>' + esc(e.writer ? (e.writer.writer || '') + ' ' + e.writer.hostname + ' pid ' + e.writer.pid : 'unknown') +
      '</td><td class="mono">' + esc(e.value) + '</td><td>' + (WRITE && i > 0 ? '<button class="rollback">roll back to this</button>' : i === 0 ? 'current' : '') + '</td></tr>').join('');
  document.getElementById('history').hidden = false;
}
document.getElementById('history-close').addEventListener('click', () => { document.getElementById('history').hidden = true; });
document.getElementById('history-table').addEventListener('click', async (ev) => {
  const row = ev.target.closest('tr[data-revision]');
  if (!row || !ev.target.classList.contains('rollback')) return;
  const current = document.querySelector('#history-table tr[data-revision]').dataset.revision;
  if (!confirm('Write the value of revision ' + row.dataset.revision + ' back to ' + historyKey + '?')) return;
  await api('POST', '/api/config/rollback', { key: historyKey, revision: row.dataset.revision, expect: current });
  await showHistory(historyKey);
});
function connect() {
  const es = new EventSource('/api/events' + (token ? '?token=' + encodeURIComponent(token) : ''));
  const status = document.getElementById('status');
  es.addEventListener('snapshot', (ev) => { snapshot = JSON.parse(ev.data); status.textContent = 'live'; status.className = 'badge live'; render(); });
  es.addEventListener('failure', (ev) => { status.textContent = 'etcd: ' + JSON.parse(ev.data); status.className = 'badge down'; });
  es.onerror = () => { status.textContent = 'disconnected'; status.className = 'badge down'; };
}
setInterval(() => { if (snapshot) for (const td of document.querySelectorAll('td.ttl')) {
  const row = snapshot.services.find((r) => r.lease === td.dataset.lease); if (row) td.textContent = ttl(row); } }, 1000);
connect();
</script>
</body>
</html>
`
}
