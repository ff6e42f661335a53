// The console's sign-in and navigation: signing in and out (and in again over unsaved
// changes), the views and their addresses, Back and Forward, unsaved forms. Loaded after
// app.js, whose helpers it uses, and before the pages, which add to `views`.
'use strict';

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
  if (!leave()) return Promise.resolve();
  const target = address(name, args);
  if (location.hash !== target) history.pushState(null, '', target);
  return show(name, args);
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
  return attempt(() => views[name](...args), undefined, () => render(h('p', {}, 'This page cannot be shown. ',
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
