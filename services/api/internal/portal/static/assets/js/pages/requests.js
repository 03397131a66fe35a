// GPU Requests, the landing page: the workspaces the session may see and,
// per workspace, its GPRs with status, queue position, estimated start, why
// they wait and how long they still hold their nodes. Server-sent events
// re-read a workspace's list when one of its GPRs moves.

import {get, qs, items} from '../api.js';
import {h, mount} from '../dom.js';
import {gprStatus, relative, time, remaining, duration, priorityBand} from '../format.js';
import {subscribe, debounce} from '../live.js';
import {canWrite, roleIn} from '../session.js';

/** listWorkspaces returns the workspaces the session may see, sorted by name. */
export async function listWorkspaces() {
  return items(await get('api/v1/slice-workspace/list'), 'workspaces');
}

export async function render(main, ctx) {
  const wss = await listWorkspaces();
  const sections = new Map();
  const live = wss.length ? subscribe(wss.map((w) => w.name), onEvent, () => wss.forEach((w) => reload(w.name))) : null;

  mount(main,
    h('div', {class: 'page-head'}, h('h1', {}, 'GPU Requests'), h('span', {class: 'spacer'}), live ? live.indicator : null),
    wss.length ? null : h('div', {class: 'panel'}, h('p', {}, 'You have no workspace yet. An administrator allocates workspaces to users.')),
    wss.map((w) => {
      const body = h('div', {class: 'table-wrap'}, h('p', {class: 'muted'}, 'Loading…'));
      const role = roleIn(ctx.session, w.name);
      const sec = h('section', {class: 'panel', 'aria-labelledby': `ws-${w.name}`, 'data-workspace': w.name},
        h('div', {class: 'panel-head'},
          h('h2', {id: `ws-${w.name}`}, w.name),
          role ? h('span', {class: 'badge neutral'}, role) : null,
          h('span', {class: 'muted'}, `Clusters: ${(w.clusters || []).join(', ') || 'none'}`),
          h('span', {class: 'spacer'}),
          h('a', {class: 'button secondary small', href: `workspaces/${w.name}`}, 'Workspace settings'),
          canWrite(ctx.session, w.name)
            ? h('a', {class: 'button small', href: `requests/new${qs({workspace: w.name})}`, 'data-action': 'new-gpr'}, 'New request')
            : null),
        body);
      sections.set(w.name, {body, gprs: [], key: ''});
      return sec;
    }));

  const reloaders = new Map();
  function reload(ws) {
    if (!reloaders.has(ws)) reloaders.set(ws, debounce(() => load(ws), 120));
    reloaders.get(ws)();
  }
  async function load(ws) {
    const s = sections.get(ws);
    if (!s) return;
    try {
      const gprs = items(await get(`api/v1/gpr/list${qs({sliceName: ws})}`));
      const key = JSON.stringify(gprs);
      if (key === s.key) return; // unchanged: keep the rows (and focus) as they are
      s.key = key;
      s.gprs = gprs;
      draw(ws);
    } catch (e) {
      mount(s.body, h('div', {class: 'alert error', role: 'alert'}, e.message));
    }
  }
  function onEvent(ev) {
    reload(ev.workspace);
  }
  function draw(ws) {
    const s = sections.get(ws);
    if (!s.gprs.length) {
      s.tbody = null;
      mount(s.body, h('p', {class: 'empty'}, 'No GPU requests in this workspace yet.'));
      return;
    }
    if (!s.tbody) {
      s.tbody = h('tbody');
      mount(s.body, h('table', {'data-gprs': ws},
        h('caption', {class: 'visually-hidden'}, `GPU requests of workspace ${ws}`),
        h('thead', {}, h('tr', {},
          h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Status'), h('th', {scope: 'col', class: 'num'}, 'Queue'),
          h('th', {scope: 'col'}, 'Estimated start'), h('th', {scope: 'col'}, 'Why waiting'), h('th', {scope: 'col'}, 'GPUs'),
          h('th', {scope: 'col'}, 'Priority'), h('th', {scope: 'col'}, 'Remaining'))),
        s.tbody));
    }
    // Newest first: what the user filed last is what they are watching.
    // Rows that did not change stay the same elements (a link being
    // clicked or focused is not swapped under the user).
    const want = [...s.gprs].reverse();
    const row = (g) => {
      const tr = gprRow(g);
      tr.dataset.key = JSON.stringify(g);
      return tr;
    };
    const have = [...s.tbody.children];
    if (have.map((tr) => tr.dataset.gpr).join() !== want.map((g) => g.gprId).join()) {
      s.tbody.replaceChildren(...want.map(row));
      return;
    }
    want.forEach((g, i) => {
      if (have[i].dataset.key !== JSON.stringify(g)) have[i].replaceWith(row(g));
    });
  }

  wss.forEach((w) => load(w.name));
  // Queue positions move with other workspaces' GPRs too: re-read now and then.
  const poll = setInterval(() => wss.forEach((w) => reload(w.name)), 30000);
  // Count the remaining time down between events.
  const tick = setInterval(() => {
    document.querySelectorAll('td[data-remaining-end]').forEach((td) => {
      td.textContent = duration(Math.max(Number(td.dataset.remainingEnd) - Date.now(), 0));
    });
  }, 1000);
  return () => {
    clearInterval(poll);
    clearInterval(tick);
    if (live) live.close();
  };
}

/** gprRow is one GPR of the list. */
export function gprRow(g) {
  const st = gprStatus(g);
  const rem = remaining(g);
  const queued = st.label === 'Queued' || st.label === 'Awaiting approval';
  return h('tr', {'data-gpr': g.gprId, 'data-status': st.label},
    h('td', {}, h('a', {href: `requests/${g.gprId}`}, g.gprName), h('div', {class: 'muted mono'}, g.gprId)),
    h('td', {}, h('span', {class: `badge ${st.kind}`, 'data-field': 'status'}, st.label)),
    h('td', {class: 'num'}, g.queuePosition ? `#${g.queuePosition}` : '–'),
    h('td', {}, queued && g.estimatedStartTime
      ? h('span', {title: time(g.estimatedStartTime)}, relative(g.estimatedStartTime))
      : g.status?.startTimestamp ? h('span', {class: 'muted'}, `started ${time(g.status.startTimestamp)}`) : '–'),
    h('td', {}, (g.pendingReasons || []).length
      ? h('ul', {class: 'reasons'}, g.pendingReasons.map((r) => h('li', {}, r.message)))
      : g.status?.failureReason ? h('span', {}, g.status.failureReason) : '–'),
    h('td', {class: 'nowrap'}, `${g.numberOfGPUNodes} × ${g.numberOfGPUs}`, h('div', {class: 'muted'}, g.gpuShape || 'any shape')),
    h('td', {}, `${g.priority} `, h('span', {class: 'muted'}, `(${priorityBand(g.priority)})`)),
    rem === null ? h('td', {}, '–') : h('td', {'data-remaining-end': String(Date.now() + rem)}, duration(rem)));
}
