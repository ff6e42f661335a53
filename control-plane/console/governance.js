// The console's governance pages: deployables, API tokens and the audit trail. Loaded after
// app.js and navigation.js, whose helpers it uses.
'use strict';


function safeLink(url, text) {
  return /^https?:\/\//i.test(url) ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, text) : text;
}

function deployableTable(items) {
  return h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Kind', 'System', 'Automation', 'Registered by'].map((c) => h('th', {}, c)))),
    h('tbody', {}, items.map((d) => h('tr', {}, h('td', {}, safeLink(d.link, d.name)), h('td', {}, d.kind.replace(/_/g, ' ')),
      h('td', {}, d.system), h('td', {}, d.automation_name), h('td', {}, d.registered_by || '—')))));
}

views.deployables = async (filters = {}) => {
  const refilter = (key) => (e) => open('deployables', { ...filters, [key]: e.target.value });
  const kind = select([['', 'Any kind'], ['flow', 'flow'], ['bot_step', 'bot step'], ['launcher', 'launcher'], ['other', 'other']],
    filters.kind || '', refilter('kind'));
  const search = h('input', { type: 'search', placeholder: 'Search by name or system', value: filters.q || '' });
  search.addEventListener('change', refilter('q'));
  const all = await api.get(`/v1/deployables${query({ kind: filters.kind, q: filters.q, connection_id: filters.connection_id })}`);
  // The systems the items live in: pick one to see its items.
  const systems = [...new Set(all.map((d) => d.system))].sort();
  const system = select([['', 'Every system'], ...systems.map((s) => [s, s])], filters.system || '', refilter('system'));
  const items = filters.system ? all.filter((d) => d.system === filters.system) : all;
  render(h('h2', {}, 'Deployables'),
    h('p', { class: 'hint' }, 'The flows, bot steps and launchers that run your automations, as the digital-adoption platform registered them.'),
    filters.connection_id ? h('p', {}, 'On one connection only. ', h('button', { onclick: () => open('deployables') }, 'Show all')) : null,
    h('div', { class: 'bar' }, system, kind, search), items.length ? deployableTable(items) : h('p', {}, 'None registered.'));
};

views.tokens = async () => {
  const [list, automations] = await Promise.all([api.get('/v1/tokens'), api.get('/v1/automations')]);
  const named = new Map(automations.map((a) => [a.id, a.name]));
  const name = h('input', { size: 30, placeholder: 'e.g. onboarding flow', 'aria-label': 'Token name' });
  // A service token may be limited to some automations: none chosen, it runs every one.
  const scope = h('select', { multiple: true, size: Math.min(5, Math.max(2, automations.length)), title: 'Only these automations (none chosen: every one)', 'aria-label': 'Automations it runs' },
    automations.map((a) => h('option', { value: a.id }, a.name)));
  const role = select(['service', 'viewer', 'editor', 'admin'].map((r) => [r, r]), 'service', () => { scope.disabled = role.value !== 'service'; });
  role.setAttribute('aria-label', 'Role');
  // The day chosen is the token's last: it expires at that day's end, in the admin's time.
  const now = new Date();
  const today = [now.getFullYear(), now.getMonth() + 1, now.getDate()].map((n) => String(n).padStart(2, '0')).join('-');
  const expires = h('input', { type: 'date', min: today, 'aria-label': 'Expires', title: 'Its last day (none: it does not expire)' });
  const shown = h('div');
  const issue = () => attempt(async (left) => {
    const body = { name: name.value, role: role.value };
    if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59.999`).toISOString();
    const chosen = [...scope.selectedOptions].map((o) => o.value);
    if (role.value === 'service' && chosen.length) body.automations = chosen;
    const issued = await api.post('/v1/tokens', body);
    // Shown once: over whatever page the admin went on to, and kept until the next message.
    if (left()) return flash([`Token "${body.name}" issued: copy it now, it is shown once. `, h('div', { class: 'secret' }, issued.token)], 'lasting');
    await views.tokens();
    flash('Token issued: copy it now, it is shown once.');
    document.getElementById('issued').replaceChildren(h('div', { class: 'secret' }, issued.token));
  });
  shown.id = 'issued';
  render(h('h2', {}, 'API tokens'),
    h('div', { class: 'panel' }, h('h3', {}, 'Issue a token'), h('div', { class: 'bar' }, name, role, h('span', { class: 'meta' }, 'runs'), scope, h('span', { class: 'meta' }, 'expires'), expires,
      h('button', { class: 'primary', onclick: issue }, 'Issue')), shown),
    h('h3', {}, 'Tokens'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Role', 'Status', 'Issued', 'By', 'Last used', 'Expires', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, list.map((t) => h('tr', {}, h('td', {}, t.name),
        h('td', {}, t.automations ? `${t.role}: ${t.automations.map((id) => named.get(id) || id).join(', ') || 'no automation left'}` : t.role), h('td', {}, tag(t.status)),
        h('td', {}, when(t.created_at)), h('td', {}, t.created_by || 'command line'), h('td', {}, when(t.last_used_at)), h('td', {}, when(t.expires_at)),
        h('td', {}, t.status === 'active' ? h('button', { class: 'danger', onclick: () => confirm(`Revoke "${t.name}"? Requests with it are refused at once.`)
          && reopenAfter(() => api.del(path('/v1/tokens/{}', t.id)), () => flash('Token revoked'), () => open('tokens')) }, 'Revoke') : null))))));
};

views.audit = async (filters = {}) => {
  const kind = select([['', 'Every record'], ...['connection', 'automation', 'token', 'deployable'].map((k) => [k, k])],
    filters.target_kind || '', (e) => open('audit', { ...filters, target_kind: e.target.value, target_id: undefined }));
  const rows = h('tbody');
  let after;
  const more = h('button', { onclick: () => attempt(async () => add(await api.get(`/v1/audit-events${query({ ...filters, limit: 50, after })}`))) }, 'More');
  const add = (page) => {
    for (const e of page.events) {
      // An action or a record opens its events alone.
      const only = (narrow, label) => h('button', { class: 'link', onclick: () => open('audit', { ...filters, ...narrow }) }, label);
      rows.append(h('tr', {}, h('td', {}, when(e.at)), h('td', {}, e.actor_name ? `${e.actor_name} (${e.actor_role})` : '—'),
        h('td', {}, only({ action: e.action }, e.action)),
        h('td', {}, only({ target_kind: e.target_kind, target_id: e.target_id }, `${e.target_kind}: ${e.target_name}`)),
        h('td', {}, h('pre', {}, JSON.stringify(e.detail)))));
    }
    after = page.next;
    more.hidden = !after;
  };
  const first = await api.get(`/v1/audit-events${query({ ...filters, limit: 50 })}`);
  // The action and record chosen, each with a way back to every event.
  const record = filters.target_id && `${filters.target_kind || 'record'}: ${first.events[0]?.target_name || filters.target_id}`;
  const narrowed = [['action', filters.action], ['target_id', record]]
    .filter(([, label]) => label)
    .map(([key, label]) => h('button', { onclick: () => open('audit', { ...filters, [key]: undefined }) }, `${label} ×`));
  render(h('h2', {}, 'Audit trail'), h('div', { class: 'bar' }, kind, ...narrowed),
    h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'On', 'Changed'].map((c) => h('th', {}, c)))), rows), more);
  add(first);
};

