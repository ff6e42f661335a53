// The console's Connections page: "All integrations" (the catalogue's apps by business domain
// and search, each app's set-up form with its fields' help and the vendor's instructions, a test
// before saving) and "My connections" (status, holds, creator, deployed items; test, edit or
// re-authorise, delete). Loaded after app.js and navigation.js, whose helpers it uses.
'use strict';

views.connections = async (tab = 'mine', filters = {}) => {
  const nav = tabs(tab, [
    ['mine', 'My connections', () => open('connections', 'mine')],
    ['all', 'All integrations', () => open('connections', 'all')],
  ]);
  const domains = await api.get('/v1/domains');
  const domain = domainFilter(domains, filters.domain, (id) => open('connections', tab, { ...filters, domain: id }));
  const search = h('input', { type: 'search', placeholder: 'Search by name or keyword', value: filters.q || '', 'aria-label': 'Search' });
  search.addEventListener('change', () => open('connections', tab, { ...filters, q: search.value }));
  if (tab === 'all') {
    const apps = await api.get(`/v1/apps${query({ domain: filters.domain, q: filters.q })}`);
    render(h('h2', {}, 'Connections'), nav, h('div', { class: 'bar' }, domain, search),
      h('div', { class: 'tiles' }, apps.map((app) => h('div', { class: 'tile' },
        h('h4', {}, app.name), h('div', {}, app.description),
        h('div', { class: 'meta' }, `${app.automations} automations · ${app.auth_types.map((a) => a.name).join(', ')}`),
        h('div', { class: 'actions' }, h('button', { 'data-write': true, class: 'primary', onclick: () => open('connection-setup', app.id) }, 'Set up'))))));
    return;
  }
  const status = select([['', 'Any status'], ...['connected', 'untested', 'failing', 'needs_reauthorization'].map((s) => [s, s.replace(/_/g, ' ')])],
    filters.status || '', (e) => open('connections', tab, { ...filters, status: e.target.value }), 'Status');
  const list = await api.get(`/v1/connections${query({ status: filters.status, q: filters.q })}`);
  render(h('h2', {}, 'Connections'), nav,
    h('div', { class: 'bar' }, status, search, h('button', { 'data-write': true, class: 'primary', onclick: () => open('connections', 'all') }, 'Add a new connection')),
    list.length === 0 ? h('p', {}, 'No connection yet: set one up from All integrations.') : null,
    h('div', { class: 'tiles' }, list.map(connectionTile)));
};

function connectionTile(c) {
  return h('div', { class: 'tile' },
    h('h4', {}, c.name), h('div', {}, tag(c.status)),
    c.status_detail ? h('div', { class: 'hint' }, c.status_detail) : null,
    ...holds(c),
    h('div', { class: 'meta' }, `${c.app} · ${c.domain}`),
    h('div', { class: 'meta' }, `Created by ${c.creator || 'a deleted token'} · ${c.automations} automations · `,
      c.deployables ? h('a', { href: '#', onclick: (e) => { e.preventDefault(); open('deployables', { connection_id: c.id }); } }, `${c.deployables} deployed items`)
        : 'no deployed item'),
    h('div', { class: 'actions' },
      h('button', { 'data-write': true, onclick: () => testConnection(c) }, 'Test'),
      c.throttled_until || (c.cooldowns || []).length ? h('button', { 'data-write': true, onclick: () => confirm('End the cool-downs before the vendor\'s time? Do so only if its limit was raised.')
        && reopenAfter(() => api.del(path('/v1/connections/{}/cooldowns', c.id)), () => flash('Cool-downs ended: executions they held run within minutes'), mine) }, 'End cool-downs') : null,
      h('button', { 'data-write': true, onclick: () => open('connection', c.id) }, 'Edit'),
      h('button', { 'data-write': true, class: 'danger', onclick: () => confirm(`Delete the connection "${c.name}"?`)
        && reopenAfter(() => api.del(path('/v1/connections/{}', c.id)), () => flash('Connection deleted'), mine) }, 'Delete')));
}

/** My connections, drawn again. */
function mine() {
  return open('connections', 'mine');
}

/** Tests a saved connection, then shows the list again — the connection as the test left it
 * (connected, failing, held by the vendor's cool-down) or as an edit made meanwhile did (409
 * `connection_reauthorised`: nothing recorded) — with what the test found above it. */
function testConnection(c) {
  return reopenAfter(() => api.post(path('/v1/connections/{}/test', c.id)),
    (t) => flash(`${t.ok ? 'Connected' : 'Failed'}: ${t.message}`, t.ok ? 'info' : 'error'), mine);
}

/** What holds the connection's calls now: a vendor's cool-down, of all of it or of a part
 * (a Slack channel), and the breaker opened by refused credentials. */
function holds(c) {
  const at = (t) => new Date(t).toLocaleString();
  const lines = [];
  if (c.throttled_until) lines.push(`Cooling down until ${at(c.throttled_until)}: ${c.throttle_reason || 'the vendor said stop'}`);
  for (const d of c.cooldowns || []) lines.push(`${d.scope} cooling down until ${at(d.until)}: ${d.reason}`);
  if (c.breaker_open_until) lines.push(`Executions fail fast until ${at(c.breaker_open_until)}: the vendor keeps refusing the credentials`);
  return lines.map((line) => h('div', { class: 'hint held' }, line));
}

/** The secret fields of an auth type, as inputs, each with what it is. */
function secretInputs(authType, optional) {
  const inputs = {};
  const nodes = authType.fields.map((f) => {
    inputs[f.name] = h('input', { type: 'password', autocomplete: 'new-password', size: 50 });
    const required = f.required && !optional;
    return field(`${f.name}${required ? ' *' : ''}`, inputs[f.name], f.description);
  });
  const values = () => Object.fromEntries(Object.entries(inputs).filter(([, i]) => i.value !== '').map(([k, i]) => [k, i.value]));
  return { nodes, values };
}

// An app's set-up form and a connection's edit form have addresses of their own
// (`#/connection-setup/<app>`, `#/connection/<id>`): a reload keeps the form, Back leaves it.
views['connection-setup'] = async (id) => {
  const app = (await api.get('/v1/apps')).find((a) => a.id === id);
  if (!app) throw new ApiError(404, { error: { code: 'not_found', message: `no app '${id}' in the catalogue` } });
  setUpConnection(app);
};

views.connection = async (id) => editConnection(await api.get(path('/v1/connections/{}', id)));

function setUpConnection(app) {
  const name = h('input', { size: 40, value: `${app.name}` });
  const domainInput = h('input', { size: 50, placeholder: 'https://…' });
  const form = h('div');
  const panel = h('div', { class: 'panel' });
  let secrets = null;
  const chooseAuth = (id) => {
    const authType = app.auth_types.find((a) => a.id === id);
    secrets = secretInputs(authType, false);
    form.replaceChildren(...secrets.nodes);
    panel.replaceChildren(h('h3', {}, `${app.name}: ${authType.name}`), h('p', {}, authType.instructions),
      h('h3', {}, 'Domain'), h('p', {}, app.domain_help));
  };
  let authId = app.auth_types[0].id;
  const auth = select(app.auth_types.map((a) => [a.id, a.name]), authId, (e) => { authId = e.target.value; chooseAuth(authId); });
  const body = () => ({ name: name.value, app: app.id, domain: domainInput.value, auth_type: authId, secrets: secrets.values() });
  chooseAuth(authId);
  render(h('h2', {}, `Set up ${app.name}`), h('div', { class: 'split' },
    watch(h('div', { class: 'panel' },
      field('Connection name', name), field('Domain', domainInput, app.domain_help), field('Authentication type', auth), form,
      h('div', { class: 'bar' },
        h('button', { 'data-write': true, onclick: () => attempt(async () => {
          const t = await api.post('/v1/connection-tests', body());
          flash(`${t.ok ? 'Connected' : 'Failed'}: ${t.message}`, t.ok ? 'info' : 'error');
        }) }, 'Test connection'),
        h('button', { 'data-write': true, class: 'primary', onclick: () => attempt(() => api.post('/v1/connections', body()), 'Connection saved')
          .then(kept).then((c) => c && open('connections', 'mine')) }, 'Save'),
        h('button', { onclick: () => open('connections', 'all') }, 'Cancel'))), `the connection to ${app.name}`),
    panel));
}

async function editConnection(c) {
  const app = (await api.get('/v1/apps')).find((a) => a.id === c.app);
  const authType = app && app.auth_types.find((a) => a.id === c.auth_type);
  const name = h('input', { size: 40, value: c.name });
  const cap = h('input', { type: 'number', min: 1, max: 10000, value: c.max_concurrency ?? '' });
  const secrets = authType ? secretInputs(authType, true) : { nodes: [], values: () => ({}) };
  const save = () => {
    const body = { name: name.value, max_concurrency: cap.value === '' ? null : Number(cap.value) };
    const given = secrets.values();
    if (Object.keys(given).length) body.secrets = given;
    // Only over the connection as it was read here (another's rename or cap is not undone).
    return attempt(() => api.patch(path('/v1/connections/{}', c.id), body, asRead(c)), 'Connection saved')
      .then(kept).then((saved) => saved && open('connections', 'mine'));
  };
  render(h('h2', {}, `Edit ${c.name}`), h('div', { class: 'split' },
    watch(h('div', { class: 'panel' }, field('Connection name', name),
      field('Most vendor calls in flight', cap, 'Empty: the workers\' default.'),
      h('h3', {}, 'Re-authorise'), h('p', { class: 'hint' }, 'Only the fields given are replaced; the connection is tested again from untested.'),
      secrets.nodes,
      h('div', { class: 'bar' }, h('button', { 'data-write': true, class: 'primary', onclick: save }, 'Save'),
        h('button', { onclick: () => open('connections', 'mine') }, 'Cancel'))), `the changes to ${c.name}`),
    h('div', { class: 'panel' }, authType ? [h('h3', {}, authType.name), h('p', {}, authType.instructions)] : null)));
}
