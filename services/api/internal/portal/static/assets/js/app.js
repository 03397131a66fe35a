// The portal's entry point: the session, the top bar and a client-side router
// over the History API. Every path is served the same index.html; the route
// picks the page module, whose render(main, ctx) may return a cleanup
// function (closing live streams and timers) that runs on navigation.

import {get, post, setCSRF, url} from './api.js';
import {h, mount, toast} from './dom.js';
import {isAdmin} from './session.js';
import * as login from './pages/login.js';
import * as requests from './pages/requests.js';
import * as create from './pages/create.js';
import * as detail from './pages/detail.js';
import * as observability from './pages/observability.js';
import * as workspaces from './pages/workspaces.js';
import * as admin from './pages/admin.js';

const routes = [
  {re: /^login$/, page: login, title: 'Sign in', public: true},
  {re: /^$/, page: requests, title: 'GPU Requests', nav: ''},
  {re: /^requests\/new$/, page: create, title: 'New GPU request', nav: ''},
  {re: /^requests\/([a-z0-9-]+)$/, page: detail, title: 'GPU request', nav: ''},
  {re: /^observability$/, page: observability, title: 'Observability', nav: 'observability'},
  {re: /^workspaces(?:\/([a-z0-9-]+))?$/, page: workspaces, title: 'Workspaces', nav: 'workspaces'},
  {re: /^admin(?:\/([a-z]+))?$/, page: admin, title: 'Admin', nav: 'admin', admin: true},
];

const basePath = new URL(document.baseURI).pathname;
let session = null;
let cleanup = null;
let rendering = 0;
let first = true;

/** routePath is the current path relative to the portal's base, without slashes at the ends. */
function routePath() {
  let p = location.pathname;
  p = p.startsWith(basePath) ? p.slice(basePath.length) : p.replace(/^\/+/, '');
  return p.replace(/\/+$/, '');
}

/** navigate goes to a portal path ("", "requests/new?workspace=a", ...) without a reload. */
export function navigate(path, {replace = false} = {}) {
  const target = url(path || './');
  if (replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  render();
}

async function loadSession() {
  try {
    session = await get('api/v1/session');
    setCSRF(session.csrfToken);
  } catch (e) {
    session = null;
    setCSRF('');
    if (e.status !== 401) throw e;
  }
  return session;
}

/** setSession installs a session just created by a login. */
export function setSession(s) {
  session = s;
  setCSRF(s?.csrfToken);
}

function renderTop(route) {
  const top = document.getElementById('topbar');
  top.hidden = !session;
  if (!session) return;
  const items = [['', 'GPU Requests'], ['observability', 'Observability'], ['workspaces', 'Workspaces']];
  if (isAdmin(session)) items.push(['admin', 'Admin']);
  mount(document.getElementById('nav'), items.map(([p, label]) => h('li', {},
    h('a', {href: p || './', 'aria-current': route?.nav === p ? 'page' : null}, label))));
  const who = session.user?.username || session.user?.email || 'signed in';
  mount(document.getElementById('user'),
    h('span', {id: 'whoami'}, who, isAdmin(session) ? h('span', {class: 'visually-hidden'}, ' (admin)') : null),
    h('button', {type: 'button', class: 'small', id: 'logout', onclick: logout}, 'Sign out'));
}

async function logout() {
  try {
    await post('api/v1/session/logout');
  } catch (e) {
    toast(e.message, 'error');
  }
  setSession(null);
  navigate('login', {replace: true});
}

async function render() {
  const token = ++rendering;
  if (cleanup) {
    try {
      cleanup();
    } catch { /* a page's cleanup must not block navigation */ }
    cleanup = null;
  }
  const path = routePath();
  const query = new URLSearchParams(location.search);
  const route = routes.find((r) => r.re.test(path));
  const main = document.getElementById('main');
  if (!route) {
    renderTop(null);
    document.title = 'Not found · EGS';
    mount(main, h('h1', {}, 'Page not found'), h('p', {}, h('a', {href: './'}, 'Back to GPU Requests')));
    return;
  }
  if (!route.public && !session) {
    await loadSession();
    if (token !== rendering) return;
    if (!session) {
      const next = path ? `?next=${encodeURIComponent(path + location.search)}` : '';
      navigate(`login${next}`, {replace: true});
      return;
    }
  }
  if (route.admin && !isAdmin(session)) {
    renderTop(route);
    mount(main, h('h1', {}, 'Admin'), h('div', {class: 'alert error', role: 'alert'}, 'Only administrators can open this page.'));
    return;
  }
  renderTop(route);
  document.title = `${route.title} · EGS`;
  mount(main);
  const params = route.re.exec(path).slice(1);
  const ctx = {session, params, query, navigate, setSession, reloadSession: loadSession};
  try {
    const c = await route.page.render(main, ctx);
    if (token !== rendering) {
      if (typeof c === 'function') c();
      return;
    }
    cleanup = typeof c === 'function' ? c : null;
  } catch (e) {
    mount(main, h('h1', {}, route.title), h('div', {class: 'alert error', role: 'alert'}, e.message || String(e)));
  }
  if (!first) {
    const h1 = main.querySelector('h1');
    if (h1) {
      h1.tabIndex = -1;
      h1.focus();
    }
  }
  first = false;
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const href = a.getAttribute('href');
  if (href.startsWith('#')) { // in-page links (the skip link): <base> would resolve them to another page
    e.preventDefault();
    const t = document.getElementById(href.slice(1));
    if (t) t.focus();
    return;
  }
  const u = new URL(a.href);
  if (u.origin !== location.origin) return;
  const rel = u.pathname.startsWith(basePath) ? u.pathname.slice(basePath.length) : u.pathname.slice(1);
  if (/^(api|login\/direct|login\/idp|oauth2|metrics)(\/|$)/.test(rel)) return; // server routes
  e.preventDefault();
  history.pushState(null, '', u);
  render();
});

window.addEventListener('popstate', render);
window.addEventListener('egs:unauthenticated', () => {
  if (!session) return;
  setSession(null);
  toast('Your session has ended. Please sign in again.', 'error');
  navigate(`login?next=${encodeURIComponent(routePath() + location.search)}`, {replace: true});
});

render();
