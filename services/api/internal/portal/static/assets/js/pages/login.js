// Sign in: with an access token (or an Owner API token), with an identity
// provider, or with a one-time login link (GET /login/direct?code=..., which
// lands here with ?error= when the link was used or expired).

import {get, post, items, url} from '../api.js';
import {h, mount, tabs, field, alertBox, showError} from '../dom.js';

export async function render(main, ctx) {
  const error = ctx.query.get('error');
  const next = ctx.query.get('next') || '';
  let providers = [];
  try {
    providers = items(await get('api/v1/session/providers'), 'providers');
  } catch {
    providers = [];
  }

  const tokenTab = (panel) => {
    const input = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false'});
    const msg = h('div', {id: 'login-error'});
    const button = h('button', {type: 'submit', id: 'login-submit'}, 'Sign in');
    const form = h('form', {id: 'token-form', novalidate: true}, field('Access token', input,
      'The access token your administrator issued to you, or an Owner API token.'), msg, h('div', {class: 'actions'}, button));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) {
        showError(msg, new Error('Enter your access token.'));
        input.focus();
        return;
      }
      button.disabled = true;
      try {
        const s = await post('api/v1/session/login', {token});
        ctx.setSession(s);
        ctx.navigate(next.startsWith('login') ? '' : next, {replace: true});
      } catch (err) {
        showError(msg, err);
        input.focus();
      } finally {
        button.disabled = false;
      }
    });
    mount(panel, form);
  };

  const idpTab = (panel) => {
    if (!providers.length) {
      mount(panel, h('p', {class: 'muted'}, 'No identity provider is configured on this installation.'));
      return;
    }
    mount(panel, h('p', {}, 'Sign in with your organisation account:'), h('div', {class: 'idp-list'},
      providers.map((p) => h('a', {class: 'button', href: url(`login/idp/${encodeURIComponent(p.id)}`), 'data-provider': p.id},
        `Sign in with ${p.name || p.id}`))));
  };

  const linkTab = (panel) => {
    mount(panel,
      h('p', {}, 'Your administrator can send you a one-time login link. Open it in this browser: it signs you in once, then stops working.'),
      h('p', {class: 'muted'}, 'If the link has been used already or has expired, ask for a new one.'));
  };

  mount(main, h('div', {class: 'login'},
    h('h1', {}, 'Sign in to EGS'),
    error ? h('div', {id: 'login-landing-error'}, alertBox('error', error)) : null,
    h('div', {class: 'panel'}, tabs('Sign-in methods', [
      {id: 'token', label: 'Access token', render: tokenTab},
      {id: 'idp', label: 'Single sign-on', render: idpTab},
      {id: 'link', label: 'Login link', render: linkTab},
    ], error ? 'link' : 'token'))));
  if (!error) document.getElementById('token')?.focus();
}
