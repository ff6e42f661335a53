// The console's Automations page: "All automations" (the catalogue's templates), "My
// automations", and the editor — general settings, the parameter table with the app's fields,
// the test run, publishing, the version history, the runs and the deployables — and Runs, every
// automation's executions. Loaded after app.js and navigation.js, whose helpers it uses.
'use strict';

const TYPES = ['string', 'email', 'integer', 'number', 'boolean', 'date', 'date_time', 'string_list', 'json'];


views.automations = async (tab = 'mine', filters = {}) => {
  const nav = tabs(tab, [
    ['mine', 'My automations', () => open('automations', 'mine')],
    ['all', 'All automations', () => open('automations', 'all')],
  ]);
  const [apps, domains] = await Promise.all([api.get('/v1/apps'), api.get('/v1/domains')]);
  const refilter = (key) => (e) => open('automations', tab, { ...filters, [key]: e.target.value });
  const app = select([['', 'Every app'], ...apps.map((a) => [a.id, a.name])], filters.app || '', refilter('app'), 'App');
  const domain = domainFilter(domains, filters.domain, (id) => open('automations', tab, { ...filters, domain: id }));
  const search = h('input', { type: 'search', placeholder: 'Search', value: filters.q || '', 'aria-label': 'Search' });
  search.addEventListener('change', refilter('q'));
  if (tab === 'all') {
    const templates = await api.get(`/v1/templates${query({ app: filters.app, domain: filters.domain, q: filters.q })}`);
    render(h('h2', {}, 'Automations'), nav, h('div', { class: 'bar' }, app, domain, search),
      h('div', { class: 'tiles' }, templates.map((t) => h('div', { class: 'tile' },
        h('h4', {}, t.name), h('div', {}, t.description), h('div', { class: 'meta' }, `${t.app} · ${t.domain}`),
        h('div', { class: 'actions' }, h('button', { 'data-write': true, class: 'primary', onclick: () => open('automation-setup', t.id) }, 'Set up'))))));
    return;
  }
  const status = select([['', 'Any status'], ['running', 'running'], ['paused', 'paused']], filters.status || '', refilter('status'), 'Status');
  const list = await api.get(`/v1/automations${query(filters)}`);
  render(h('h2', {}, 'Automations'), nav, h('div', { class: 'bar' }, app, domain, status, search),
    list.length === 0 ? h('p', {}, 'No automation yet: set one up from All automations.') : null,
    h('div', { class: 'tiles' }, list.map((a) => h('div', { class: 'tile' },
      h('h4', {}, a.name), h('div', {}, a.description), h('div', {}, tag(a.status)),
      h('div', { class: 'meta' }, `${a.template} · ${a.published_version ? `live: version ${a.published_version.number}` : 'draft, never published'} · ${a.deployables} deployed items`),
      h('div', { class: 'actions' },
        h('button', { class: 'primary', onclick: () => open('editor', a.id) }, 'Edit'),
        h('button', { 'data-write': true, onclick: () => attempt(() => api.post(path('/v1/automations/{}/duplicate', a.id)), 'Duplicated')
          .then((copy) => copy && open('editor', copy.id)) }, 'Duplicate'),
        h('button', { 'data-write': true, class: 'danger', onclick: () => confirm(`Delete "${a.name}" and its versions?`)
          && reopenAfter(() => api.del(path('/v1/automations/{}', a.id)), () => flash('Automation deleted'), () => open('automations', 'mine')) }, 'Delete'))))));
};

// A template's set-up form, at `#/automation-setup/<template>`.
views['automation-setup'] = async (id) => {
  const template = (await api.get('/v1/templates')).find((t) => t.id === id);
  if (!template) throw new ApiError(404, { error: { code: 'not_found', message: `no template '${id}' in the catalogue` } });
  await setUpAutomation(template);
};

async function setUpAutomation(template) {
  const connections = await api.get(`/v1/connections${query({ app: template.app })}`);
  if (connections.length === 0) {
    render(h('h2', {}, `Set up ${template.name}`), h('p', {}, `Set up a ${template.app} connection first: `,
      h('button', { 'data-write': true, onclick: () => open('connections', 'all') }, 'All integrations')));
    return;
  }
  const connection = select(connections.map((c) => [c.id, `${c.name} (${c.status.replace(/_/g, ' ')})`]), connections[0].id, () => {});
  const name = h('input', { size: 40, value: template.name });
  const description = h('input', { size: 60, value: template.description });
  const create = () => attempt(() => api.post('/v1/automations', {
    template: template.id, connection_id: connection.value, name: name.value, description: description.value,
  }), 'Draft saved').then(kept).then((a) => a && open('editor', a.id));
  render(h('h2', {}, `Set up ${template.name}`), watch(h('div', { class: 'panel' },
    field('Connection', connection), field('Unique name', name, 'The tile\'s title.'), field('Description', description),
    h('div', { class: 'bar' }, h('button', { 'data-write': true, class: 'primary', onclick: create }, 'Create draft'),
      h('button', { onclick: () => open('automations', 'all') }, 'Cancel'))), `the draft of "${template.name}"`));
}

views.editor = async (id) => {
  const a = await api.get(path('/v1/automations/{}', id));
  const app = a.template.split('.')[0];
  const connections = await api.get(`/v1/connections${query({ app })}`);
  const connection = select(connections.map((c) => [c.id, `${c.name} (${c.status.replace(/_/g, ' ')})`]), a.connection_id, () => {});
  const name = h('input', { size: 40, value: a.name });
  const description = h('input', { size: 60, value: a.description });
  const status = select([['running', 'running'], ['paused', 'paused']], a.status, () => {});
  const table = parameterTable(a.parameters);
  // Saved only over the automation as last read or saved here: a change made meanwhile by
  // someone else (a pause, a new parameter) is refused, not undone, and these edits stay.
  let read = a;
  const save = () => attempt(() => api.patch(path('/v1/automations/{}', id), {
    name: name.value, description: description.value, status: status.value,
    connection_id: connection.value, parameters: table.specs(),
  }, asRead(read)), 'Draft saved').then((saved) => { if (saved) read = saved; return kept(saved); });
  const publish = async () => {
    if (await save() === undefined) return;
    const version = prompt('Version name (empty: "Version N")', '');
    if (version === null) return;
    const published = await attempt(() => api.post(path('/v1/automations/{}/publish', id), version ? { version_name: version } : {}, asRead(read)));
    // An unchanged draft publishes nothing: the live version comes back.
    if (published) flash(published.number === a.published_version?.number ? `Nothing to publish: the draft is unchanged since version ${published.number}, which stays live` : 'Published');
    open('editor', id);
  };
  const live = a.published_version ? `Live: version ${a.published_version.number} (${a.published_version.name}), published ${when(a.published_version.published_at)}` : 'Never published';
  const draft = `the draft of "${a.name}"`;
  render(h('h2', {}, a.name), h('div', { class: 'bar' }, tag(a.status), h('span', { class: 'meta' }, `${a.template} · ${live}`)),
    watch(h('div', { class: 'panel' }, h('h3', {}, 'General settings'),
      field('Connection', connection), field('Unique name', name), field('Description', description),
      field('Status', status, 'Paused: every execution is refused until it runs again (at once, not at the next publish).')), draft),
    watch(h('div', { class: 'panel' }, h('h3', {}, 'Parameters'), table.node,
      h('div', { class: 'bar' }, h('button', { 'data-write': true, onclick: table.add }, '+ Create'),
        h('button', { 'data-write': true, onclick: () => attempt(() => table.loadFields(id)) }, 'Fields from the app'))), draft),
    h('div', { class: 'bar' }, h('button', { 'data-write': true, onclick: save }, 'Save as draft'),
      h('button', { 'data-write': true, class: 'primary', onclick: publish }, 'Publish'),
      h('button', { onclick: () => open('automations', 'mine') }, 'Back')),
    testPanel(id, a.name, a.parameters), await versionPanel(id), await runPanel(id), await deployedPanel(id));
};

/** A row's spec without the limits its type does not take (the API refuses them): a row
 * changed from integer to string loses its minimum and maximum, one changed from string its
 * allowed values — which no cell of the table shows to clear. */
function withinType(spec) {
  const kept = { ...spec };
  if (!['integer', 'number'].includes(kept.type)) { delete kept.minimum; delete kept.maximum; }
  if (!['string', 'string_list'].includes(kept.type)) delete kept.allowed_values;
  return kept;
}

/** The parameter table, editable; `specs()` gives it back as the API takes it. */
function parameterTable(parameters) {
  const rows = [];
  const body = h('tbody');
  const options = h('datalist', { id: 'vendor-fields' });
  const warning = h('div', { class: 'hint' });
  const addRow = (p) => {
    const row = {
      original: p,
      name: h('input', { value: p.name, 'aria-label': 'Parameter name' }),
      type: select(TYPES.map((t) => [t, t]), p.type || 'string', () => {}),
      target: h('input', { value: p.target, list: 'vendor-fields', 'aria-label': 'Field' }),
      required: h('input', { type: 'checkbox', checked: p.required, 'aria-label': 'Required' }),
      description: h('input', { value: p.description || '', 'aria-label': 'Description' }),
    };
    const tr = h('tr', {}, h('td', {}, row.name), h('td', {}, row.type), h('td', {}, row.target),
      h('td', {}, row.required), h('td', {}, row.description),
      h('td', {}, h('button', { 'data-write': true, class: 'danger', onclick: () => { rows.splice(rows.indexOf(row), 1); tr.remove(); changed(); } }, 'Delete')));
    rows.push(row);
    body.append(tr);
  };
  // A row added or deleted is a change, as a cell edited is (for watch()).
  const changed = () => body.dispatchEvent(new Event('change', { bubbles: true }));
  parameters.forEach(addRow);
  return {
    node: h('div', {}, options, warning, h('table', {}, h('thead', {}, h('tr', {},
      ['Parameter name', 'Type', 'Field', 'Required', 'Description', ''].map((c) => h('th', {}, c)))), body)),
    add: () => { addRow({ name: '', type: 'string', target: '', required: false, description: '' }); changed(); },
    specs: () => rows.map((r) => withinType({
      ...r.original, name: r.name.value, type: r.type.value, target: r.target.value,
      required: r.required.checked, description: r.description.value,
    })),
    async loadFields(id) {
      const list = await api.get(path('/v1/automations/{}/fields', id));
      options.replaceChildren(...list.fields.map((f) => h('option', { value: f.target }, `${f.label} (${f.type}${f.required ? ', required' : ''})`)));
      warning.replaceChildren(list.unmapped_required.length
        ? `Required by the app and mapped by no parameter: ${list.unmapped_required.join(', ')}`
        : `${list.fields.length} fields from ${list.source === 'vendor' ? `the app (${list.object})` : 'the catalogue'}; pick one in a Field cell.`);
    },
  };
}

function testPanel(id, name, parameters) {
  const example = Object.fromEntries(parameters.filter((p) => p.required).map((p) => [p.name, '']));
  const values = h('textarea', { 'aria-label': 'Parameter values (JSON)' }, JSON.stringify(example, null, 2));
  const out = h('div');
  const run = () => attempt(async (left) => {
    let parsed;
    try { parsed = JSON.parse(values.value); } catch (err) { throw new ApiError(422, { error: { message: `not JSON: ${err.message}`, field: 'parameters' } }); }
    const result = await api.post(path('/v1/automations/{}/test', id), { parameters: parsed });
    // A real call that created a real record: said even when the editor was left meanwhile.
    if (left()) flash(`The test of ${name} ${result.status}: ${result.request}`, result.ok ? 'info' : 'error');
    out.replaceChildren(h('div', {}, tag(result.status), ` ${result.request} · ${result.duration_ms} ms`),
      h('pre', {}, JSON.stringify(result.ok ? result.output : result.error, null, 2)));
  });
  return h('div', { class: 'panel' }, h('h3', {}, 'Test automation'),
    h('p', { class: 'hint' }, 'Sends the saved draft once to the app, as an execution would: a real call that creates a real record.'),
    values, h('div', { class: 'bar' }, h('button', { 'data-write': true, onclick: run }, 'Test automation')), out);
}

async function versionPanel(id) {
  const versions = await api.get(path('/v1/automations/{}/versions', id));
  const chosen = new Set();
  const again = () => open('editor', id);
  const rows = versions.map((v) => h('tr', {},
    h('td', {}, v.live ? '' : h('input', { type: 'checkbox', onchange: (e) => (e.target.checked ? chosen.add(v.number) : chosen.delete(v.number)) })),
    h('td', {}, `${v.number}`), h('td', {}, v.name, v.live ? [' ', tag('live')] : null),
    h('td', {}, v.published_by || '—'), h('td', {}, v.connection ? v.connection.name : 'deleted'),
    h('td', {}, v.connection ? tag(v.connection.status) : '—'), h('td', {}, when(v.published_at)),
    h('td', {},
      h('button', { 'data-write': true, onclick: () => { const n = prompt('New name', v.name); if (n) reopenAfter(() => api.patch(path('/v1/automations/{}/versions/{}', id, v.number), { name: n }), () => flash('Renamed'), again); } }, 'Rename'),
      v.live ? null : h('button', { 'data-write': true, onclick: () => confirm(`Restore version ${v.number} (${v.name})? It goes live at once, and the draft becomes it.`)
        && reopenAfter(() => api.post(path('/v1/automations/{}/versions/{}/restore', id, v.number)), () => flash('Restored'), again) }, 'Restore'),
      v.live ? null : h('button', { 'data-write': true, class: 'danger', onclick: () => confirm(`Delete version ${v.number}?`) && reopenAfter(() => api.del(path('/v1/automations/{}/versions/{}', id, v.number)), () => flash('Deleted'), again) }, 'Delete'))));
  const bulk = () => chosen.size && confirm(`Delete ${chosen.size} versions?`)
    && reopenAfter(() => api.post(path('/v1/automations/{}/versions/delete', id), { numbers: [...chosen] }), () => flash('Versions deleted'), again);
  return h('div', { class: 'panel' }, h('h3', {}, 'Version history'),
    versions.length ? h('table', {}, h('thead', {}, h('tr', {}, ['', '#', 'Version name', 'Modified by', 'Connection', 'Connection status', 'Modified', ''].map((c) => h('th', {}, c)))), h('tbody', {}, rows))
      : h('p', {}, 'Nothing published yet.'),
    versions.length > 1 ? h('div', { class: 'bar' }, h('button', { 'data-write': true, class: 'danger', onclick: bulk }, 'Delete the selected versions')) : null);
}

// Runs a failed (or, confirmed, an in-doubt) execution again with its values, once its cause
// is mended.
function rerunButton(e) {
  if (e.status !== 'failed' && e.status !== 'unknown_outcome') return null;
  const again = () => {
    const doubt = e.status === 'unknown_outcome';
    if (doubt && !confirm('Whether this run did its action is unknown: running it again may do it twice. Run it again?')) return undefined;
    return attempt(async () => {
      const run = await api.post(path('/v1/executions/{}/rerun', e.id), doubt ? { allow: e.status } : {});
      flash(`Running again as ${run.execution_id}`);
    });
  };
  return h('button', { 'data-write': true, onclick: again }, 'Run again');
}

// A table of executions a page at a time, `fetch(after)` reading each page; with `named` (the
// tenant's automations by id), a column naming each one's automation, opening its editor.
async function runTable(fetch, named) {
  const table = h('tbody');
  // The next page's cursor; More fetches it once however often it is clicked.
  let next;
  const more = h('button', { onclick: () => attempt(async () => add(await fetch(next))) }, 'More');
  const columns = named ? 7 : 6;
  const automation = (e) => (named.has(e.automation_id)
    ? h('button', { class: 'link', onclick: () => open('editor', e.automation_id) }, named.get(e.automation_id)) : 'deleted automation');
  const add = (p) => {
    for (const e of p.executions) {
      const error = e.result && e.result.error;
      // The execution's whole record (its id, times and result as published), on request.
      const detail = h('tr', { hidden: true }, h('td', { colspan: columns },
        h('pre', {}, JSON.stringify({ id: e.id, automation_id: e.automation_id, finished_at: e.finished_at, rerun_id: e.rerun_id, result: e.result }, null, 2))));
      // A run already run again says so (its latest re-run in the details).
      table.append(h('tr', {}, h('td', {}, when(e.enqueued_at)), named ? h('td', {}, automation(e)) : null,
        h('td', {}, tag(e.status), e.rerun_id ? ' run again' : ''),
        h('td', {}, `${e.attempts}`), h('td', {}, e.source || '—'), h('td', {}, error ? `${error.code}: ${error.message}` : ''),
        h('td', {}, h('button', { onclick: () => { detail.hidden = !detail.hidden; } }, 'Details'), rerunButton(e))), detail);
    }
    next = p.next;
    more.hidden = !next;
  };
  const first = await fetch();
  const heads = ['Enqueued', ...(named ? ['Automation'] : []), 'Status', 'Attempts', 'Source', 'Error', ''];
  add(first);
  return [first.executions.length ? h('table', {}, h('thead', {}, h('tr', {}, heads.map((c) => h('th', {}, c)))), table) : h('p', {}, 'No run yet.'), more];
}

async function runPanel(id) {
  const fetch = (after) => api.get(path('/v1/automations/{}/executions', id) + query({ limit: 20, after }));
  return h('div', { class: 'panel' }, h('h3', {}, 'Runs'), ...await runTable(fetch));
}

// Every automation's runs, newest first: what ran, and what failed, whichever automation it was.
views.runs = async (filters = {}) => {
  const refilter = (key) => (e) => open('runs', { ...filters, [key]: e.target.value });
  const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'unknown_outcome'];
  const status = select([['', 'Any status'], ...STATUSES.map((s) => [s, s.replace(/_/g, ' ')])], filters.status || '', refilter('status'));
  const SINCE = [['', 'Any time'], ['1', 'Last hour'], ['24', 'Last 24 hours'], ['168', 'Last 7 days']];
  const hours = select(SINCE, filters.hours || '', refilter('hours'));
  status.setAttribute('aria-label', 'Status');
  hours.setAttribute('aria-label', 'Since');
  const since = filters.hours ? new Date(Date.now() - filters.hours * 3600e3).toISOString() : undefined;
  const automations = await api.get('/v1/automations');
  const named = new Map(automations.map((a) => [a.id, a.name]));
  const automation = select([['', 'Every automation'], ...automations.map((a) => [a.id, a.name])], filters.automation || '', refilter('automation'));
  automation.setAttribute('aria-label', 'Automation');
  const listed = filters.automation ? path('/v1/automations/{}/executions', filters.automation) : '/v1/executions';
  const fetch = (after) => api.get(listed + query({ status: filters.status, since, limit: 50, after }));
  // Once a failure's cause is mended: every failure of the window that no run followed yet, a
  // batch at a time (at most ten), those that cannot run again reported.
  const again = since ? h('button', { 'data-write': true, onclick: () => confirm('Run again every failure of this window that was not run again yet?') && attempt(async () => {
    let ran = 0;
    const refused = [];
    let next;
    for (let batch = 0; batch < 10; batch += 1) {
      const done = await api.post('/v1/executions/rerun', { since, automation_id: filters.automation || undefined, limit: 200, after: next });
      ran += done.reruns.filter((r) => r.rerun_id).length;
      refused.push(...done.reruns.filter((r) => r.error).map((r) => `${r.execution_id}: ${r.error.message}`));
      next = done.next;
      if (!next) break;
    }
    flash(`${ran} run again${refused.length ? `; not: ${refused.join('; ')}` : ''}${next ? '; more are left: run again' : ''}`);
    await views.runs(filters);
  }) }, 'Run the failures again') : null;
  render(h('h2', {}, 'Runs'), h('p', { class: 'hint' }, 'Every automation\'s executions, newest first.'),
    h('div', { class: 'bar' }, automation, status, hours, again), ...await runTable(fetch, named));
};

async function deployedPanel(id) {
  const items = await api.get(`/v1/deployables${query({ automation_id: id })}`);
  return h('div', { class: 'panel' }, h('h3', {}, 'Deployables'), items.length ? deployableTable(items)
    : h('p', { class: 'hint' }, 'No flow or bot step runs this automation yet.'));
}

