// Workspace: its clusters and namespaces, a kubeconfig download per cluster
// (POST /api/v1/slice-workspace/kube-config), and its API tokens (create
// with role and validity, shown once with a copy button, list, delete).

import {get, post, del, qs, items} from '../api.js';
import {h, hiddenText, mount, field, select, showError, toast, confirmAction, alertBox, copyText} from '../dom.js';
import {dayPlus} from '../format.js';
import {canWrite, roleIn, isAdmin} from '../session.js';
import {listWorkspaces} from './requests.js';

export async function render(main, ctx) {
  const wss = await listWorkspaces();
  if (!wss.length) {
    mount(main, h('h1', {}, 'Workspaces'), h('p', {}, 'You have no workspace yet.'));
    return;
  }
  const name = ctx.params[0];
  const ws = wss.find((w) => w.name === name);
  if (!ws) {
    ctx.navigate(`workspaces/${wss[0].name}`, {replace: true});
    return;
  }
  const role = roleIn(ctx.session, ws.name);
  const nav = h('nav', {'aria-label': 'Workspaces'}, h('ul', {class: 'nav', style: {marginBottom: '1rem'}},
    wss.map((w) => h('li', {}, h('a', {class: 'button small ' + (w.name === ws.name ? '' : 'secondary'), href: `workspaces/${w.name}`,
      'aria-current': w.name === ws.name ? 'page' : null}, w.name)))));

  mount(main,
    h('div', {class: 'page-head'}, h('h1', {}, `Workspace ${ws.name}`), role ? h('span', {class: 'badge neutral'}, role) : null),
    wss.length > 1 ? nav : null,
    h('div', {class: 'grid grid-2'},
      h('section', {class: 'panel', 'aria-labelledby': 'ws-facts-h'}, h('h2', {id: 'ws-facts-h'}, 'Clusters and namespaces'),
        h('dl', {class: 'facts'},
          h('dt', {}, 'Clusters'), h('dd', {}, (ws.clusters || []).join(', ') || 'none'),
          h('dt', {}, 'Namespaces'), h('dd', {}, (ws.namespaces || []).map((n) => n.namespace).join(', ') || 'none'))),
      kubeconfigPanel(ctx, ws)),
    isAdmin(ctx.session) ? tokensPanel(ctx, ws) : null);
}

function kubeconfigPanel(ctx, ws) {
  const msg = h('div', {id: 'kubeconfig-error'});
  const done = h('div', {id: 'kubeconfig-done', 'aria-live': 'polite'});
  const allowed = canWrite(ctx.session, ws.name);
  const buttons = (ws.clusters || []).map((c) => {
    const b = h('button', {type: 'button', class: 'secondary', 'data-cluster': c, id: `kubeconfig-${c}`, disabled: !allowed},
      `Download kubeconfig for ${c}`);
    b.addEventListener('click', async () => {
      b.disabled = true;
      showError(msg, null);
      mount(done);
      try {
        const r = await post('api/v1/slice-workspace/kube-config', {workspaceName: ws.name, clusterName: c});
        const file = `kubeconfig-${ws.name}-${c}.yaml`;
        const blob = new Blob([r.kubeConfig], {type: 'application/yaml'});
        const a = h('a', {href: URL.createObjectURL(blob), download: file, hidden: true});
        document.body.append(a);
        a.click();
        setTimeout(() => {
          URL.revokeObjectURL(a.href);
          a.remove();
        }, 1000);
        mount(done, alertBox('success', `Saved ${file}. Use it with: kubectl --kubeconfig ${file} get pods`));
      } catch (e) {
        showError(msg, e);
      } finally {
        b.disabled = !allowed;
      }
    });
    return b;
  });
  return h('section', {class: 'panel', 'aria-labelledby': 'kc-h'}, h('h2', {id: 'kc-h'}, 'Kubeconfig'),
    h('p', {class: 'muted'}, allowed
      ? 'A kubeconfig gives kubectl access to the workspace\'s namespaces on one cluster.'
      : 'Viewers cannot download kubeconfigs.'),
    h('div', {class: 'actions'}, buttons), msg, done);
}

function tokensPanel(ctx, ws) {
  const list = h('div', {class: 'table-wrap', id: 'tokens'});
  const msg = h('div', {id: 'token-error'});
  const secret = h('div', {id: 'token-secret'});
  const roles = [['Editor', 'Editor: create and change GPU requests'], ['Viewer', 'Viewer: read only']];
  if (isAdmin(ctx.session)) roles.push(['Owner', 'Owner: every workspace (not bound to this one)']);
  const el = {
    name: h('input', {id: 'token-name', autocomplete: 'off', placeholder: 'e.g. ci-pipeline'}),
    role: select({id: 'token-role'}, roles, 'Editor'),
    validity: h('input', {id: 'token-validity', type: 'date', value: dayPlus(30), min: dayPlus(0)}),
    description: h('input', {id: 'token-description', autocomplete: 'off'}),
  };
  const create = h('button', {type: 'submit', id: 'token-create'}, 'Create token');
  const form = h('form', {id: 'token-form', novalidate: true},
    h('div', {class: 'form-grid'},
      field('Name', el.name, 'Unique, at most 128 characters.'),
      field('Role', el.role),
      field('Valid until', el.validity, 'The last day it works (UTC).'),
      field('Description', el.description)),
    msg, h('div', {class: 'actions'}, create));

  async function load() {
    try {
      const keys = items(await get(`api/v1/api-key/list${qs({workspaceName: ws.name})}`), 'data');
      if (!keys.length) {
        mount(list, h('p', {class: 'empty'}, 'No API tokens for this workspace.'));
        return;
      }
      mount(list, h('table', {},
        h('caption', {class: 'visually-hidden'}, `API tokens of workspace ${ws.name}`),
        h('thead', {}, h('tr', {}, ['Name', 'Role', 'User', 'Valid until', 'Description', 'Key id', ''].map((c) => h('th', {scope: 'col'}, c || hiddenText('Actions'))))),
        h('tbody', {}, keys.map((k) => h('tr', {'data-token': k.name},
          h('td', {}, k.name), h('td', {}, k.role), h('td', {}, k.userName || ''), h('td', {}, k.validity),
          h('td', {}, k.description || ''), h('td', {class: 'mono'}, k.apiKey),
          h('td', {}, h('button', {type: 'button', class: 'small danger', 'data-action': 'delete-token',
            'aria-label': `Delete token ${k.name}`, onclick: () => remove(k)}, 'Delete')))))));
    } catch (e) {
      showError(list, e);
    }
  }
  async function remove(k) {
    if (!await confirmAction(`Delete the API token ${k.name}? Programs using it stop working at once.`, 'Delete token')) return;
    try {
      await del('api/v1/api-key', {apiKey: k.apiKey});
      toast(`Token ${k.name} deleted`);
      load();
    } catch (e) {
      showError(msg, e);
    }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(msg, null);
    create.disabled = true;
    try {
      const r = await post('api/v1/api-key', {
        name: el.name.value.trim(), role: el.role.value, validity: el.validity.value, description: el.description.value,
        workspaceName: ws.name, userName: ctx.session.user?.username || '',
      });
      const box = h('input', {readonly: true, value: r.apiKey, id: 'token-value', class: 'mono', 'aria-label': 'New API token'});
      const copy = h('button', {type: 'button', id: 'token-copy', class: 'secondary'}, 'Copy');
      copy.addEventListener('click', async () => toast(await copyText(r.apiKey, box) ? 'Copied to the clipboard' : 'Select the token and copy it'));
      mount(secret, h('div', {class: 'alert success', role: 'status'},
        h('p', {}, h('strong', {}, `Token ${el.name.value.trim()} created.`), ' Copy it now: it is shown only once.'),
        h('div', {class: 'secret'}, box, copy,
          h('button', {type: 'button', class: 'link', id: 'token-dismiss', onclick: () => mount(secret)}, 'Done'))));
      form.reset();
      el.validity.value = dayPlus(30);
      load();
    } catch (err) {
      showError(msg, err);
    } finally {
      create.disabled = false;
    }
  });
  load();
  return h('section', {class: 'panel', 'aria-labelledby': 'tokens-h'}, h('h2', {id: 'tokens-h'}, 'API tokens'),
    h('p', {class: 'muted'}, 'Programs exchange an API token for a bearer token at POST /api/v1/auth.'),
    secret, form, h('h3', {}, 'Existing tokens'), list);
}
