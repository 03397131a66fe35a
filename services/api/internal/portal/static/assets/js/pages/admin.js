// Admin: workspaces (create, delete), users (register, access tokens, login
// links, revoke sessions), clusters and inventory, the queue (priority,
// approve/reject, early release) and workspace policies.

import {get, post, put, del, qs, items, url} from '../api.js';
import {h, hiddenText, mount, field, check, select, showError, toast, confirmAction, tabs, copyText} from '../dom.js';
import {gprStatus, relative, time, isProvisioned, isQueued, dayPlus} from '../format.js';
import {subscribe, debounce} from '../live.js';
import {listWorkspaces} from './requests.js';

const sections = [
  {id: 'workspaces', label: 'Workspaces', render: workspacesTab},
  {id: 'users', label: 'Users', render: usersTab},
  {id: 'inventory', label: 'Clusters and inventory', render: inventoryTab},
  {id: 'queue', label: 'Queue', render: queueTab},
  {id: 'policies', label: 'Policies', render: policiesTab},
];

let cleanups = [];

export async function render(main, ctx) {
  cleanups = [];
  const current = sections.some((s) => s.id === ctx.params[0]) ? ctx.params[0] : 'workspaces';
  mount(main, h('div', {class: 'page-head'}, h('h1', {}, 'Admin')),
    tabs('Admin sections', sections.map((s) => ({...s, render: (panel) => s.render(panel, ctx)})), current,
      (id) => history.replaceState(null, '', url(`admin/${id}`))));
  return () => cleanups.forEach((c) => c());
}

/** secretBox shows a value once with a copy button. */
function secretBox(id, title, value, note) {
  const box = h('input', {readonly: true, value, id, class: 'mono', 'aria-label': title});
  const copy = h('button', {type: 'button', class: 'secondary small', id: `${id}-copy`}, 'Copy');
  copy.addEventListener('click', async () => toast(await copyText(value, box) ? 'Copied to the clipboard' : 'Select it and copy it'));
  return h('div', {class: 'alert success', role: 'status'}, h('p', {}, h('strong', {}, title), note ? ` ${note}` : ''),
    h('div', {class: 'secret'}, box, copy));
}

async function clusterNames() {
  const inv = await get('api/v1/inventory/list');
  return [...new Set([...(inv.managedNodes || []), ...(inv.unmanagedNodes || [])].map((n) => n.clusterName))].sort();
}

// ---- workspaces ----

async function workspacesTab(panel) {
  const msg = h('div', {id: 'ws-error'});
  const list = h('div', {class: 'table-wrap', id: 'admin-workspaces'});
  let clusters = [];
  try {
    clusters = await clusterNames();
  } catch (e) {
    showError(msg, e);
  }
  const el = {
    name: h('input', {id: 'ws-name', autocomplete: 'off', placeholder: 'e.g. team-a'}),
    namespaces: h('input', {id: 'ws-namespaces', autocomplete: 'off', placeholder: 'default: the workspace name'}),
    username: h('input', {id: 'ws-username', autocomplete: 'off'}),
    email: h('input', {id: 'ws-email', type: 'email', autocomplete: 'off'}),
  };
  const boxes = clusters.map((c) => h('input', {type: 'checkbox', value: c, id: `ws-cluster-${c}`, name: 'clusters'}));
  const create = h('button', {type: 'submit', id: 'ws-create'}, 'Create workspace');
  const form = h('form', {id: 'ws-form', novalidate: true},
    h('div', {class: 'form-grid'},
      field('Name', el.name, 'Lowercase letters, digits and "-".'),
      field('Namespaces', el.namespaces, 'Comma-separated; created on every cluster of the workspace.'),
      field('Owner user name', el.username), field('Owner email', el.email)),
    h('fieldset', {}, h('legend', {}, 'Clusters'), boxes.length
      ? boxes.map((b) => check(b.value, b)) : h('p', {class: 'muted'}, 'No cluster is registered.')),
    msg, h('div', {class: 'actions'}, create));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(msg, null);
    create.disabled = true;
    try {
      const ns = el.namespaces.value.split(',').map((s) => s.trim()).filter(Boolean);
      await post('api/v1/slice-workspace', {
        workspaceName: el.name.value.trim(), clusters: boxes.filter((b) => b.checked).map((b) => b.value),
        namespaces: ns.length ? ns : null, username: el.username.value.trim(), email: el.email.value.trim(),
      });
      toast(`Workspace ${el.name.value.trim()} created`);
      form.reset();
      load();
    } catch (err) {
      showError(msg, err);
    } finally {
      create.disabled = false;
    }
  });
  async function load() {
    try {
      const wss = await listWorkspaces();
      mount(list, wss.length ? h('table', {},
        h('caption', {class: 'visually-hidden'}, 'Workspaces'),
        h('thead', {}, h('tr', {}, ['Name', 'Clusters', 'Namespaces', ''].map((c) => h('th', {scope: 'col'}, c || hiddenText('Actions'))))),
        h('tbody', {}, wss.map((w) => h('tr', {'data-workspace': w.name},
          h('td', {}, h('a', {href: `workspaces/${w.name}`}, w.name)), h('td', {}, (w.clusters || []).join(', ')),
          h('td', {}, (w.namespaces || []).map((n) => n.namespace).join(', ')),
          h('td', {}, h('button', {type: 'button', class: 'small danger', 'data-action': 'delete-workspace',
            'aria-label': `Delete workspace ${w.name}`, onclick: () => remove(w.name)}, 'Delete'))))))
        : h('p', {class: 'empty'}, 'No workspaces.'));
    } catch (e) {
      showError(list, e);
    }
  }
  async function remove(name) {
    if (!await confirmAction(`Delete workspace ${name}? Its queued requests are cancelled and its nodes released.`, 'Delete workspace')) return;
    try {
      await del('api/v1/slice-workspace', {workspaceName: name});
      toast(`Workspace ${name} deleted`);
      load();
    } catch (e) {
      showError(msg, e);
    }
  }
  mount(panel, h('section', {class: 'panel'}, h('h2', {}, 'New workspace'), form),
    h('section', {class: 'panel'}, h('h2', {}, 'Workspaces'), list));
  load();
}

// ---- users ----

const roleOptions = [['', 'No access'], ['Viewer', 'Viewer'], ['Editor', 'Editor'], ['Owner', 'Owner']];

async function usersTab(panel) {
  const msg = h('div', {id: 'user-error'});
  const out = h('div', {id: 'user-output', 'aria-live': 'polite'});
  const list = h('div', {class: 'table-wrap', id: 'admin-users'});
  let wss = [];
  try {
    wss = await listWorkspaces();
  } catch (e) {
    showError(msg, e);
  }
  const el = {
    username: h('input', {id: 'user-name', autocomplete: 'off'}),
    email: h('input', {id: 'user-email', type: 'email', autocomplete: 'off'}),
    admin: h('input', {id: 'user-admin', type: 'checkbox'}),
  };
  const roleSel = wss.map((w) => select({id: `user-ws-${w.name}`, 'data-workspace': w.name}, roleOptions, ''));
  const create = h('button', {type: 'submit', id: 'user-create'}, 'Register user');
  const form = h('form', {id: 'user-form', novalidate: true},
    h('div', {class: 'form-grid'}, field('User name', el.username), field('Email', el.email)),
    check('Administrator', el.admin),
    wss.length ? h('fieldset', {}, h('legend', {}, 'Workspace access'),
      h('div', {class: 'form-grid'}, roleSel.map((s) => field(s.dataset.workspace, s)))) : null,
    msg, h('div', {class: 'actions'}, create));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(msg, null);
    create.disabled = true;
    try {
      await post('api/v1/admin/users', {
        username: el.username.value.trim(), email: el.email.value.trim(), admin: el.admin.checked,
        workspaces: roleSel.filter((s) => s.value).map((s) => ({name: s.dataset.workspace, role: s.value})),
      });
      toast(`User ${el.username.value.trim()} registered`);
      form.reset();
      load();
    } catch (err) {
      showError(msg, err);
    } finally {
      create.disabled = false;
    }
  });

  const act = (fn) => async (e) => {
    const b = e.currentTarget;
    b.disabled = true;
    showError(msg, null);
    try {
      await fn();
    } catch (err) {
      showError(msg, err);
      msg.scrollIntoView({block: 'nearest'});
    } finally {
      b.disabled = false;
    }
  };
  async function load() {
    try {
      const users = items(await get('api/v1/admin/users'), 'users');
      mount(list, users.length ? h('table', {},
        h('caption', {class: 'visually-hidden'}, 'Users'),
        h('thead', {}, h('tr', {}, ['User', 'Email', 'Workspaces', 'Actions'].map((c) => h('th', {scope: 'col'}, c)))),
        h('tbody', {}, users.map((u) => h('tr', {'data-user': u.username},
          h('td', {}, u.username, u.admin ? [' ', h('span', {class: 'badge info'}, 'admin')] : null),
          h('td', {}, u.email || ''),
          h('td', {}, (u.workspaces || []).map((w) => `${w.name} (${w.role})`).join(', ') || h('span', {class: 'muted'}, 'none')),
          h('td', {}, h('div', {class: 'actions'},
            h('button', {type: 'button', class: 'small', 'data-action': 'issue-token', onclick: act(() => issueToken(u))}, 'Issue access token'),
            h('button', {type: 'button', class: 'small secondary', 'data-action': 'login-link', onclick: act(() => loginLink(u))}, 'Login link'),
            h('button', {type: 'button', class: 'small secondary', 'data-action': 'revoke-sessions', onclick: act(() => revoke(u))}, 'Revoke sessions'),
            h('button', {type: 'button', class: 'small danger', 'data-action': 'delete-user', 'aria-label': `Delete user ${u.username}`,
              onclick: act(() => removeUser(u))}, 'Delete')))))))
        : h('p', {class: 'empty'}, 'No users registered yet.'));
    } catch (e) {
      showError(list, e);
    }
  }
  async function issueToken(u) {
    const r = await post(`api/v1/admin/users/${encodeURIComponent(u.username)}/access-tokens`, {validity: dayPlus(30)});
    mount(out, secretBox('issued-token', `Access token for ${u.username}`, r.token,
      `Valid until ${time(r.expiresAt) || r.expiresAt}. Shown only once: send it to the user.`));
  }
  async function loginLink(u) {
    const r = await post(`api/v1/admin/users/${encodeURIComponent(u.username)}/direct-login`, {ttl: '15m'});
    mount(out, secretBox('login-link', `One-time login link for ${u.username}`, url(r.url),
      `It signs the user in once, until ${time(r.expiresAt) || r.expiresAt}.`));
  }
  async function revoke(u) {
    if (!await confirmAction(`Sign ${u.username} out everywhere?`, 'Revoke sessions')) return;
    await post(`api/v1/admin/users/${encodeURIComponent(u.username)}/revoke-sessions`);
    toast(`Sessions of ${u.username} revoked`);
  }
  async function removeUser(u) {
    if (!await confirmAction(`Delete user ${u.username}? Their sessions and access tokens stop working.`, 'Delete user')) return;
    await del(`api/v1/admin/users/${encodeURIComponent(u.username)}`);
    toast(`User ${u.username} deleted`);
    load();
  }
  mount(panel, h('section', {class: 'panel'}, h('h2', {}, 'Register a user'), form),
    h('section', {class: 'panel'}, h('h2', {}, 'Users'), out, list));
  load();
}

// ---- inventory ----

async function inventoryTab(panel) {
  const body = h('div', {id: 'admin-inventory'}, h('p', {class: 'muted'}, 'Loading…'));
  mount(panel, body);
  try {
    const inv = await get('api/v1/inventory/list');
    const nodes = [...(inv.managedNodes || []).map((n) => ({...n, managed: true})), ...(inv.unmanagedNodes || []).map((n) => ({...n, managed: false}))];
    const byCluster = new Map();
    nodes.forEach((n) => byCluster.set(n.clusterName, [...(byCluster.get(n.clusterName) || []), n]));
    mount(body, [...byCluster.keys()].sort().map((c) => {
      const ns = byCluster.get(c).sort((a, b) => a.gpuNodeName.localeCompare(b.gpuNodeName));
      const total = ns.reduce((s, n) => s + (n.managed ? n.gpuCount : 0), 0);
      const free = ns.reduce((s, n) => s + (n.managed ? n.availableGPUs : 0), 0);
      const shapes = [...new Set(ns.map((n) => `${n.gpuModelName} (${n.instanceType})`))];
      return h('section', {class: 'panel', 'data-cluster': c},
        h('div', {class: 'panel-head'}, h('h2', {}, c), h('span', {class: 'muted'}, `${ns.length} nodes · ${free} of ${total} GPUs free · ${shapes.join(', ')}`)),
        h('div', {class: 'table-wrap'}, h('table', {},
          h('caption', {class: 'visually-hidden'}, `Nodes of cluster ${c}`),
          h('thead', {}, h('tr', {}, ['Node', 'Shape', 'GPUs free', 'Health', 'State', 'Allocation'].map((x) => h('th', {scope: 'col'}, x)))),
          h('tbody', {}, ns.map((n) => h('tr', {'data-node': n.gpuNodeName},
            h('td', {}, n.gpuNodeName, n.managed ? null : [' ', h('span', {class: 'badge neutral'}, 'unmanaged')]),
            h('td', {}, `${n.gpuModelName} · ${n.instanceType} · ${n.memory} GB`),
            h('td', {class: 'num'}, `${n.availableGPUs} / ${n.gpuCount}`),
            h('td', {}, h('span', {class: `badge ${n.nodeHealth === 'Healthy' ? 'ok' : 'bad'}`}, n.nodeHealth)),
            h('td', {}, n.gpuNodeState.replace('NODE_', '').toLowerCase()),
            h('td', {}, (n.allocation || []).map((a) => h('div', {}, `${a.sliceName}: `, h('span', {class: 'mono'}, a.gprName),
              ` (${a.totalGPUsAllocated} GPUs)`)))))))));
    }));
  } catch (e) {
    showError(body, e);
  }
}

// ---- queue ----

async function queueTab(panel) {
  const msg = h('div', {id: 'queue-error'});
  const body = h('div', {class: 'table-wrap', id: 'admin-queue'}, h('p', {class: 'muted'}, 'Loading…'));
  let wss = [];
  const live = subscribe([], () => reload(), () => reload());
  cleanups.push(() => live.close());
  mount(panel, h('section', {class: 'panel'},
    h('div', {class: 'panel-head'}, h('h2', {}, 'Queue'), h('span', {class: 'spacer'}), live.indicator),
    h('p', {class: 'muted'}, 'Queued requests in scheduling order, then those holding nodes. Move a request within the queue, or change its priority.'),
    msg, body));
  const act = (fn) => async (e) => {
    const b = e.currentTarget;
    b.disabled = true;
    showError(msg, null);
    try {
      await fn();
      reload();
    } catch (err) {
      showError(msg, err);
    } finally {
      b.disabled = false;
    }
  };
  const reload = debounce(load, 150);
  let shown = '';
  async function load() {
    try {
      wss = await listWorkspaces();
      const lists = await Promise.all(wss.map((w) => get(`api/v1/gpr/list${qs({sliceName: w.name})}`).then((d) => items(d))));
      const all = lists.flat().filter((g) => isQueued(g) || isProvisioned(g) || gprStatus(g).label === 'Provisioning');
      all.sort((a, b) => (a.queuePosition || 1e9) - (b.queuePosition || 1e9) || b.priority - a.priority);
      const queued = all.filter((g) => g.queuePosition || gprStatus(g).label === 'Awaiting approval')
        .sort((a, b) => (a.queuePosition || 1e9) - (b.queuePosition || 1e9));
      // Re-render only on a change, so a button under the pointer or with
      // focus stays the same element while nothing moved.
      const key = JSON.stringify(all.map((g) => [g.gprId, g.gprName, g.status, g.queuePosition, g.priority, g.pendingReasons, g.estimatedStartTime]));
      if (key === shown) return;
      shown = key;
      if (!all.length) {
        mount(body, h('p', {class: 'empty'}, 'Nothing is queued or running.'));
        return;
      }
      mount(body, h('table', {},
        h('caption', {class: 'visually-hidden'}, 'Queue'),
        h('thead', {}, h('tr', {}, ['#', 'Request', 'Workspace', 'Status', 'Estimated start', 'Priority', 'Actions'].map((c) => h('th', {scope: 'col'}, c)))),
        h('tbody', {}, all.map((g) => queueRow(g, queued)))));
    } catch (e) {
      showError(body, e);
    }
  }
  function queueRow(g, queued) {
    const st = gprStatus(g);
    const prio = h('input', {type: 'number', min: 1, max: 300, value: g.priority, 'aria-label': `Priority of ${g.gprName}`, class: 'small'});
    prio.style.width = '5.5rem';
    const kids = [h('button', {type: 'button', class: 'small secondary', 'data-action': 'set-priority',
      onclick: act(() => put('api/v1/gpr', {gprId: g.gprId, priority: Number(prio.value)}))}, 'Set')];
    const i = queued.indexOf(g);
    const move = (direction, label) => h('button', {type: 'button', class: 'small secondary', 'data-action': `move-${direction}`,
      'aria-label': `${label}: ${g.gprName}`, onclick: act(() => post('api/v1/gpr/move', {gprId: g.gprId, direction}))}, label);
    if (g.queuePosition && i > 0) kids.push(move('up', 'Move up'));
    if (g.queuePosition && i >= 0 && i < queued.length - 1) kids.push(move('down', 'Move down'));
    if (st.label === 'Awaiting approval') {
      kids.push(h('button', {type: 'button', class: 'small', 'data-action': 'approve', onclick: act(() => post('api/v1/gpr/approve', {gprId: g.gprId}))}, 'Approve'));
      kids.push(h('button', {type: 'button', class: 'small danger', 'data-action': 'reject', onclick: act(async () => {
        if (!await confirmAction(`Reject ${g.gprName}?`, 'Reject')) return;
        await post('api/v1/gpr/reject', {gprId: g.gprId, reason: 'rejected by an administrator'});
      })}, 'Reject'));
    }
    if (isProvisioned(g)) {
      kids.push(h('button', {type: 'button', class: 'small danger', 'data-action': 'early-release', onclick: act(async () => {
        if (!await confirmAction(`Release the nodes of ${g.gprName} now?`, 'Release early')) return;
        await put('api/v1/gpr', {gprId: g.gprId, earlyRelease: true});
      })}, 'Release early'));
    }
    return h('tr', {'data-gpr': g.gprId},
      h('td', {class: 'num'}, g.queuePosition ? String(g.queuePosition) : '–'),
      h('td', {}, h('a', {href: `requests/${g.gprId}`}, g.gprName), h('div', {class: 'muted mono'}, g.gprId)),
      h('td', {}, g.sliceName),
      h('td', {}, h('span', {class: `badge ${st.kind}`}, st.label),
        (g.pendingReasons || []).length ? h('ul', {class: 'reasons'}, g.pendingReasons.map((r) => h('li', {}, r.message))) : null),
      h('td', {}, isQueued(g) && g.estimatedStartTime ? h('span', {title: time(g.estimatedStartTime)}, relative(g.estimatedStartTime)) : '–'),
      h('td', {}, h('div', {class: 'row'}, prio)),
      h('td', {}, h('div', {class: 'actions'}, kids)));
  }
  load();
}

// ---- policies ----

async function policiesTab(panel) {
  const wss = await listWorkspaces();
  if (!wss.length) {
    mount(panel, h('p', {}, 'No workspaces.'));
    return;
  }
  const wsSel = select({id: 'policy-workspace'}, wss.map((w) => w.name), wss[0].name);
  const msg = h('div', {id: 'policy-error'});
  const el = {
    allowedShapes: h('input', {id: 'policy-shapes', autocomplete: 'off', placeholder: 'any shape'}),
    maxGpusPerGpr: h('input', {id: 'policy-max-gpus', type: 'number', min: 0}),
    maxMemoryPerGpu: h('input', {id: 'policy-max-memory', type: 'number', min: 0}),
    maxQueuedGprs: h('input', {id: 'policy-max-queued', type: 'number', min: 0}),
    maxExitDuration: h('input', {id: 'policy-max-duration', autocomplete: 'off', placeholder: 'e.g. 2d or 36h'}),
    minPriority: h('input', {id: 'policy-min-priority', type: 'number', min: 0, max: 300}),
    maxPriority: h('input', {id: 'policy-max-priority', type: 'number', min: 0, max: 300}),
    autoEviction: select({id: 'policy-eviction'}, [['', 'Default (allowed)'], ['true', 'Allowed'], ['false', 'Not allowed']], ''),
    requeueOnFailure: select({id: 'policy-requeue'}, [['', 'As each request says'], ['true', 'Requeue'], ['false', 'Do not requeue']], ''),
  };
  const save = h('button', {type: 'submit', id: 'policy-save'}, 'Save policy');
  const form = h('form', {id: 'policy-form', novalidate: true},
    h('p', {class: 'muted'}, 'A request beyond the policy is not refused: it waits for an administrator\'s approval. Empty or 0 means no limit.'),
    h('div', {class: 'form-grid'},
      field('Allowed shapes', el.allowedShapes, 'Comma-separated GPU models or instance types.'),
      field('Max GPUs per request', el.maxGpusPerGpr), field('Max memory per GPU (GB)', el.maxMemoryPerGpu),
      field('Max queued requests', el.maxQueuedGprs), field('Max duration', el.maxExitDuration),
      field('Min priority', el.minPriority), field('Max priority', el.maxPriority),
      field('Eviction', el.autoEviction), field('Requeue on failure', el.requeueOnFailure)),
    msg, h('div', {class: 'actions'}, save));
  const num = (x) => (x.value === '' ? 0 : Number(x.value));
  const tri = (x) => (x.value === '' ? null : x.value === 'true');
  async function load() {
    showError(msg, null);
    try {
      const {policy: p} = await get(`api/v1/workspace-policy${qs({workspaceName: wsSel.value})}`);
      el.allowedShapes.value = (p.allowedShapes || []).join(', ');
      ['maxGpusPerGpr', 'maxMemoryPerGpu', 'maxQueuedGprs', 'minPriority', 'maxPriority'].forEach((k) => {
        el[k].value = p[k] ? String(p[k]) : '';
      });
      el.maxExitDuration.value = p.maxExitDuration || '';
      el.autoEviction.value = p.autoEviction === null || p.autoEviction === undefined ? '' : String(p.autoEviction);
      el.requeueOnFailure.value = p.requeueOnFailure === null || p.requeueOnFailure === undefined ? '' : String(p.requeueOnFailure);
    } catch (e) {
      showError(msg, e);
    }
  }
  wsSel.addEventListener('change', load);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(msg, null);
    save.disabled = true;
    try {
      await put('api/v1/workspace-policy', {workspaceName: wsSel.value, policy: {
        allowedShapes: el.allowedShapes.value.split(',').map((s) => s.trim()).filter(Boolean),
        maxGpusPerGpr: num(el.maxGpusPerGpr), maxMemoryPerGpu: num(el.maxMemoryPerGpu), maxQueuedGprs: num(el.maxQueuedGprs),
        maxExitDuration: el.maxExitDuration.value.trim(), minPriority: num(el.minPriority), maxPriority: num(el.maxPriority),
        autoEviction: tri(el.autoEviction), requeueOnFailure: tri(el.requeueOnFailure),
      }});
      toast(`Policy of ${wsSel.value} saved`);
      load();
    } catch (err) {
      showError(msg, err);
    } finally {
      save.disabled = false;
    }
  });
  mount(panel, h('section', {class: 'panel'}, h('h2', {}, 'Workspace policy'), field('Workspace', wsSel), form));
  load();
}
