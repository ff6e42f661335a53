// The admin console: the seed's two pages (Connections, Automations) and the rest of the
// configuration — deployables, tokens, the audit trail — over the same /v1 API as any client,
// with the caller's own token (kept for the browser tab only). Everything the API returns is
// put into the page as text, never as markup. This file: the helpers, sign-in, navigation and
// routing; connections.js, automations.js and governance.js add the pages.
'use strict';

// ---------------------------------------------------------------------------------------------
// The page and the API

/** An element: attributes (`on…` are listeners), then children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'onclick') el.addEventListener('click', once(el, value));
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A click handler that does nothing more while the call it started is in flight: the element
 * is disabled (and busy, for screen readers) until the promise the handler returned settles, so
 * that a double-click tests an automation, issues a token or saves a connection once. */
function once(el, handler) {
  let busy = false;
  return (event) => {
    if (busy) return;
    const result = handler(event);
    if (!result || typeof result.then !== 'function') return;
    busy = true;
    el.disabled = true;
    el.setAttribute('aria-busy', 'true');
    const done = () => {
      busy = false;
      el.disabled = false;
      el.removeAttribute('aria-busy');
    };
    result.then(done, done);
  };
}

/** An API path template with each `{}` replaced by the next value, encoded. */
function path(template, ...values) {
  let i = 0;
  return template.replace(/\{\}/g, () => encodeURIComponent(values[i++]));
}

/** A query string of the filters that are set. */
function query(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Each view shown has a number. What a view read before it was left is dropped (the read threw
// Superseded, which attempt() lets go without a word): a slow page answering late does not
// replace the one the admin went on to, nor flash on it. A change (a save, a delete, a token
// issued) is done on the server all the same: attempt() says how it ended over the page shown
// now, and what would have followed it on the page left (a redraw, a move) does not happen.
let showing = 0;

class Superseded extends Error {}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code;
    this.field = e.field;
  }
}

const api = {
  token: sessionStorage.getItem('aic.token') || '',
  async call(method, url, body, more = {}) {
    const asked = showing;
    const headers = { Authorization: `Bearer ${this.token}`, ...more };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { error: { message: text } }; }
    if (res.status === 401) {
      // The token is no longer good (revoked, expired): the sign-in form says so, the API's
      // code above it, and nothing more of the view that asked is drawn over the form; over
      // unsaved changes, a sign-in above the page keeps them.
      if (unsaved && document.body.dataset.role) signInAgain();
      else signOut('The token is unknown, expired or revoked.');
      failure(new ApiError(res.status, data));
      throw new Superseded();
    }
    if (asked !== showing && method === 'GET') throw new Superseded();
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  },
  get(url) { return this.call('GET', url); },
  post(url, body, headers) { return this.call('POST', url, body, headers); },
  patch(url, body, headers) { return this.call('PATCH', url, body, headers); },
  del(url) { return this.call('DELETE', url); },
};

let flashTimer = null;

/** Says what happened: a confirmation fades after a few seconds, an error stays until the
 * next message (and is announced at once by a screen reader, as an alert), and one that must
 * be read (`lasting`: a secret shown once) stays above the others until dismissed. */
function flash(message, kind = 'info') {
  clearTimeout(flashTimer);
  const shown = h('div', { class: kind === 'lasting' ? 'info lasting' : kind, role: kind === 'error' ? 'alert' : null }, message);
  if (kind === 'lasting') shown.append(' ', h('button', { onclick: () => shown.remove() }, 'Dismiss'));
  unflash(shown);
  if (kind === 'info') flashTimer = setTimeout(unflash, 5000);
}

/** Clears the messages but those that last (then shows `shown`). */
function unflash(...shown) {
  const box = document.getElementById('flash');
  box.replaceChildren(...box.querySelectorAll(':scope > .lasting'), ...shown);
}

function failure(err) {
  const where = err.field ? ` (${err.field})` : '';
  const code = err.code ? `${err.code}: ` : '';
  flash(`${code}${err.message}${where}`, 'error');
}

/** Runs an action, showing what went wrong instead of failing silently (then running
 * `failed`, when given). The action is given `left()`: whether the admin has left its page. */
async function attempt(action, done, failed) {
  const asked = showing;
  const left = () => asked !== showing;
  if (document.querySelector('#flash .error')) unflash();
  try {
    const result = await action(left);
    if (done) flash(done);
    return left() ? never() : result;
  } catch (err) {
    if (err instanceof Superseded) return undefined;
    failure(err);
    if (left()) return never();
    if (failed) failed();
    return undefined;
  }
}

/** What never settles: an action's follow-ups on a page since left. */
const never = () => new Promise(() => {});

function render(...nodes) {
  document.getElementById('main').replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

function tag(status) {
  return h('span', { class: `tag ${status}` }, String(status).replace(/_/g, ' '));
}

function when(at) {
  return at ? new Date(at).toLocaleString() : '—';
}

function tabs(current, entries) {
  return h('div', { class: 'tabs' }, entries.map(([name, label, go]) =>
    h('button', { class: name === current ? 'active' : null, onclick: go }, label)));
}

function select(options, value, onchange, label) {
  return h('select', { onchange, 'aria-label': label || null },
    options.map(([v, label]) => h('option', { value: v, selected: v === value ? true : null }, label)));
}

let fieldIds = 0;

/** The business-domain filter: a menu that can be searched. Typing narrows the domains it
 * offers; choosing one, or typing a whole name, calls `pick` with its id, an emptied field
 * with ''; a name that is no domain's says so. */
function domainFilter(domains, current, pick) {
  fieldIds += 1;
  const menu = h('datalist', { id: `domains-${fieldIds}` }, domains.map((d) => h('option', { value: d.name }, d.apps === undefined ? null : `${d.apps} apps`)));
  const now = domains.find((d) => d.id === current);
  const input = h('input', { type: 'search', list: menu.id, size: 28, value: now ? now.name : '', placeholder: 'Every business domain', 'aria-label': 'Business domain' });
  const choose = () => {
    const typed = input.value.trim().toLowerCase();
    const chosen = typed ? domains.find((d) => d.name.toLowerCase() === typed || d.id === typed) : { id: '' };
    if (!chosen) return flash(`No business domain is named "${input.value.trim()}": choose one the menu offers.`, 'error');
    if (chosen.id !== (current || '')) pick(chosen.id);
    return undefined;
  };
  // A choice from the menu replaces the text at once; typing is done on Enter or on leaving.
  input.addEventListener('input', (e) => e.inputType === 'insertReplacementText' && choose());
  input.addEventListener('change', choose);
  return h('span', {}, input, menu);
}

/** A labelled form field: the label names its input, the hint describes it (for screen readers too). */
function field(label, input, hint) {
  fieldIds += 1;
  if (!input.id) input.id = `field-${fieldIds}`;
  const help = hint ? h('div', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (help) input.setAttribute('aria-describedby', help.id);
  return h('div', {}, h('label', { for: input.id }, label), help, input);
}

// ---------------------------------------------------------------------------------------------
// Sign-in and navigation

const views = {};

function signOut(message) {
  // What the view shown was asking is dropped: its answers draw nothing over the form.
  showing += 1;
  unsaved = null;
  api.token = '';
  delete document.body.dataset.role;
  delete document.body.dataset.tenant;
  document.getElementById('who').textContent = '';
  sessionStorage.removeItem('aic.token');
  document.getElementById('nav').hidden = true;
  signIn(message);
}

/** A token's input, masked, signing in on Enter. */
function tokenInput(go) {
  return h('input', { type: 'password', size: 60, autocomplete: 'off', placeholder: 'aic_…', onkeydown: (e) => e.key === 'Enter' && go() });
}

function signIn(message) {
  document.getElementById('main').removeAttribute('aria-busy');
  const input = tokenInput(() => go());
  const go = async () => {
    api.token = input.value.trim();
    if (await start()) sessionStorage.setItem('aic.token', api.token);
  };
  render(h('div', { class: 'panel' },
    h('h2', {}, 'Sign in'),
    message ? h('p', {}, message) : null,
    field('API token', input, 'An admin, editor or viewer token (create-tenant prints the first admin token). It is kept for this tab only.'),
    h('div', { class: 'bar' }, h('button', { class: 'primary', onclick: go }, 'Sign in'))));
  input.focus();
}

/** The token refused over unsaved changes: the page stays as it is, edits and all, a sign-in
 * above it; signed in again to the same tenant, the admin saves them. */
function signInAgain() {
  api.token = '';
  sessionStorage.removeItem('aic.token');
  if (document.getElementById('sign-in-again')) return;
  const input = tokenInput(() => go());
  const tenant = document.body.dataset.tenant;
  const go = async () => {
    api.token = input.value.trim();
    if (!(await start(tenant))) return;
    sessionStorage.setItem('aic.token', api.token);
    // Another tenant's token shows its own page instead, the edits dropped.
    if (panel.isConnected) flash('Signed in again: save what you changed.');
    panel.remove();
  };
  const panel = h('div', { class: 'panel', id: 'sign-in-again' }, h('h3', {}, 'Sign in again'),
    h('p', {}, 'The token is unknown, expired or revoked. What you changed on this page is kept: sign in again, then save it.'),
    field('API token', input), h('div', { class: 'bar' }, h('button', { class: 'primary', onclick: go }, 'Sign in')));
  document.getElementById('main').prepend(panel);
  input.focus();
}

/** Reads who the token is and opens the console for its role (the page shown kept when signed
 * in again to its `tenant`); false when it cannot. */
async function start(tenant) {
  let me;
  try {
    me = await api.get('/v1/me');
  } catch (err) {
    api.token = '';
    if (!(err instanceof Superseded)) failure(err);
    return false;
  }
  if (me.token.role === 'service') {
    api.token = '';
    flash('A service token only runs automations: sign in with an admin, editor or viewer token.', 'error');
    return false;
  }
  // A viewer reads: the buttons that would write are not shown; tokens and audit are the admins'.
  document.body.dataset.role = me.token.role;
  document.getElementById('who').textContent = `${me.token.name} (${me.token.role}) · ${me.tenant_name}`;
  document.getElementById('nav').hidden = false;
  document.body.dataset.tenant = me.tenant_id;
  if (tenant === me.tenant_id) return true;
  unsaved = null;
  show(...route(location.hash));
  return true;
}

// The page's address names the view and its arguments — `#/editor/<id>`,
// `#/runs?status=failed&hours=24` — so that a reload stays on it, Back and Forward move
// between views, and a link opens one (after signing in, in a new tab).

/** `#/name/arg…?filter=value…` of a view and its arguments (strings, then a filters object). */
function address(name, args) {
  const filters = args.length && typeof args[args.length - 1] === 'object' ? args[args.length - 1] : {};
  const parts = args.filter((a) => typeof a === 'string').map(encodeURIComponent);
  return `#/${[name, ...parts].join('/')}${query(filters)}`;
}

/** The view and arguments an address names; the connections for one that names none, or that
 * is not an address (a `%` typed in that starts no character). */
function route(hash) {
  const [where, search] = hash.replace(/^#\/?/, '').split('?');
  let name;
  let parts;
  try {
    [name, ...parts] = where.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return ['connections', []];
  }
  if (!Object.hasOwn(views, name || '')) return ['connections', []];
  const filters = Object.fromEntries(new URLSearchParams(search || ''));
  return [name, Object.keys(filters).length ? [...parts, filters] : parts];
}

// A form with changes not saved yet — what it holds, for the question — until it is saved or
// left: leaving it (another view, Back, Sign out, a reload) asks first.
let unsaved = null;
// The address of the view shown, to go back to when the admin stays.
let here = '';

/** Marks `what` unsaved as soon as anything in `node` changes; `node`. */
function watch(node, what) {
  const mark = () => { unsaved = what; };
  node.addEventListener('input', mark);
  node.addEventListener('change', mark);
  return node;
}

/** A form's save answered (anything but attempt()'s undefined): nothing is left unsaved. */
function kept(result) {
  if (result !== undefined) unsaved = null;
  return result;
}

/** Whether the view may be left: nothing unsaved, or the admin chose to drop it. */
function leave() {
  if (unsaved && !confirm(`Leave without saving ${unsaved}?`)) return false;
  unsaved = null;
  return true;
}

/** Opens a view, its address becoming a new entry of the tab's history. */
function open(name, ...args) {
  if (!leave()) return;
  const target = address(name, args);
  if (location.hash !== target) history.pushState(null, '', target);
  show(name, args);
}

function show(name, args) {
  here = location.hash;
  // A link to an admin's page, opened with another role's token: the connections instead.
  if (document.querySelector(`#nav button[data-view="${name}"][data-admin]`) && document.body.dataset.role !== 'admin') return show('connections', []);
  showing += 1;
  const mine = showing;
  // The page is busy until the view has drawn itself: a screen reader waits to read it.
  const main = document.getElementById('main');
  main.setAttribute('aria-busy', 'true');
  const section = { editor: 'automations', 'automation-setup': 'automations', 'connection-setup': 'connections', connection: 'connections' }[name] || name;
  for (const b of document.querySelectorAll('#nav button[data-view]')) b.classList.toggle('active', b.dataset.view === section);
  // A view that cannot be shown (a link to an automation since deleted, say) says why above
  // and leaves nothing of the page before it.
  attempt(() => views[name](...args), undefined, () => render(h('p', {}, 'This page cannot be shown. ',
    h('button', { onclick: () => open('connections') }, 'Back to the connections'))))
    .finally(() => mine === showing && main.removeAttribute('aria-busy'));
}

// ---------------------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('#nav button[data-view]')) b.addEventListener('click', () => open(b.dataset.view));
  document.getElementById('sign-out').addEventListener('click', () => leave() && signOut('Signed out.'));
  // Back, Forward, or an address typed in: the view it names, once signed in; the address of
  // the view shown again when the admin stays on its unsaved form.
  window.addEventListener('popstate', () => {
    if (!document.body.dataset.role) return;
    if (leave()) show(...route(location.hash));
    else history.pushState(null, '', here);
  });
  window.addEventListener('beforeunload', (e) => { if (unsaved) e.preventDefault(); });
  if (api.token) {
    // A stored token refused: its sign-in form is shown; the API out of reach: a new one.
    start().then((ok) => ok || document.querySelector('#main input[type=password]') || signIn());
  } else {
    signIn();
  }
});
