// The admin console: the seed's two pages (Connections, Automations) and the rest of the
// configuration — deployables, tokens, the audit trail — over the same /v1 API as any client,
// with the caller's own token (kept for the browser tab only). Everything the API returns is
// put into the page as text, never as markup. This file: the page's and the API's helpers;
// navigation.js signs in, navigates and routes; connections.js, automations.js and
// governance.js add the pages.
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

/** Runs an action on a list's item as `attempt` does, then shows the list again (`reopen`) —
 * as the action left it, or, refused, as others left it meanwhile — and says what happened
 * over it once drawn: `said(result)` on success, the refusal with its code otherwise (said
 * before the redraw, a refusal would be cleared by it). An admin gone on to another page
 * meanwhile stays there, and is told over it. */
async function reopenAfter(action, said, reopen) {
  const asked = showing;
  if (document.querySelector('#flash .error')) unflash();
  let outcome;
  try {
    const result = await action(() => asked !== showing);
    outcome = () => said(result);
  } catch (err) {
    if (err instanceof Superseded) return;
    outcome = () => failure(err);
  }
  if (asked === showing) await reopen();
  outcome();
}

/** The header that makes a change only over `record` as it was read (its revision as the
 * ETag): one made meanwhile by someone else is refused (412), not undone. */
const asRead = (record) => ({ 'If-Match': `"${record.revision}"` });

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
