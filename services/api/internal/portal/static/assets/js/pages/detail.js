// One GPR: its facts, the timeline of its events with their reasons (GET
// /api/v1/gpr/events, then live from the event stream), its nodes and GPUs
// with live charts (telemetry), and the actions its state allows: rename,
// change priority, early release, delete while queued.

import {get, put, del, qs, items} from '../api.js';
import {h, mount, field, showError, toast, confirmAction, alertBox} from '../dom.js';
import {gprStatus, time, relative, remaining, duration, isQueued, isProvisioned, isActive, priorityBand} from '../format.js';
import {subscribe, debounce} from '../live.js';
import {canWrite} from '../session.js';
import {gpuCharts} from './observability.js';

export async function render(main, ctx) {
  const id = ctx.params[0];
  let g = await get(`api/v1/gpr${qs({gprId: id})}`);
  let history = [];
  try {
    history = items(await get(`api/v1/gpr/events${qs({gprId: id})}`));
  } catch {
    history = [];
  }
  const writable = canWrite(ctx.session, g.sliceName);

  const facts = h('div', {id: 'gpr-facts'});
  const actions = h('div', {id: 'gpr-actions'});
  const actionMsg = h('div', {id: 'gpr-action-error'});
  const timeline = h('ol', {class: 'timeline', id: 'gpr-timeline'});
  const gpuPanel = h('div', {id: 'gpr-gpus'});
  const live = subscribe([g.sliceName], (ev) => {
    if (ev.gprId !== id) return;
    if (!history.some((x) => x.seq === ev.seq)) {
      history.push(ev);
      drawTimeline();
    }
    refresh();
  }, () => refresh());

  mount(main,
    h('p', {}, h('a', {href: './'}, '← GPU Requests')),
    h('div', {class: 'page-head'}, h('h1', {id: 'gpr-title'}, g.gprName), h('span', {id: 'gpr-status'}),
      h('span', {class: 'spacer'}), live.indicator),
    h('div', {class: 'grid grid-2'},
      h('section', {class: 'panel', 'aria-labelledby': 'facts-h'}, h('h2', {id: 'facts-h'}, 'Details'), facts),
      h('section', {class: 'panel', 'aria-labelledby': 'timeline-h'}, h('h2', {id: 'timeline-h'}, 'Timeline'), timeline)),
    writable ? h('section', {class: 'panel', 'aria-labelledby': 'actions-h'}, h('h2', {id: 'actions-h'}, 'Actions'), actionMsg, actions) : null,
    h('section', {class: 'panel', 'aria-labelledby': 'gpus-h'}, h('h2', {id: 'gpus-h'}, 'Nodes and GPUs'), gpuPanel));

  const refresh = debounce(async () => {
    try {
      g = await get(`api/v1/gpr${qs({gprId: id})}`);
      draw();
    } catch (e) {
      if (e.status === 404) {
        mount(facts, alertBox('info', 'This request no longer exists (it was deleted or cancelled).'));
        mount(actions);
        actionsKey = 'gone';
        stopCharts();
      }
    }
  }, 100);

  function drawFacts() {
    const st = gprStatus(g);
    mount(document.getElementById('gpr-status'), h('span', {class: `badge ${st.kind}`, id: 'gpr-status-badge', 'data-status': st.label}, st.label));
    document.getElementById('gpr-title').textContent = g.gprName;
    const rem = remaining(g);
    const rows = [
      ['Request id', h('code', {}, g.gprId)],
      ['Workspace', g.sliceName],
      ['Status', st.label],
      ['Priority', `${g.priority} (${priorityBand(g.priority)})`],
      ['Cluster', g.clusterName || 'automatic'],
      ['Shape', `${g.numberOfGPUNodes} node${g.numberOfGPUNodes === 1 ? '' : 's'} × ${g.numberOfGPUs} GPUs, ${g.gpuShape || 'any GPU'}${g.instanceType ? ` (${g.instanceType})` : ''}, ≥ ${g.memoryPerGPU} GB each`],
      ['Duration', g.exitDuration],
      g.enforceIdleTimeOut ? ['Idle timeout', g.idleTimeOutDuration] : null,
      g.queuePosition ? ['Queue position', `#${g.queuePosition}`] : null,
      isQueued(g) && g.estimatedStartTime ? ['Estimated start', `${relative(g.estimatedStartTime)} (${time(g.estimatedStartTime)})`] : null,
      (g.pendingReasons || []).length ? ['Waiting because', h('ul', {class: 'reasons', id: 'gpr-reasons'}, g.pendingReasons.map((r) => h('li', {}, r.message)))] : null,
      g.status.startTimestamp ? ['Started', time(g.status.startTimestamp)] : null,
      rem !== null ? ['Remaining', h('span', {id: 'gpr-remaining'}, duration(rem))] : null,
      g.status.completionTimestamp ? ['Completed', time(g.status.completionTimestamp)] : null,
      g.status.nodes.length ? ['Nodes', g.status.nodes.join(', ')] : null,
      g.status.numGpusAllocated ? ['GPUs allocated', String(g.status.numGpusAllocated)] : null,
      g.status.failureReason ? ['Failure', g.status.failureReason] : null,
      g.evictedBy ? ['Evicted by', g.evictedBy] : null,
      g.status.retryCount ? ['Retries', String(g.status.retryCount)] : null,
    ].filter(Boolean);
    mount(facts, h('dl', {class: 'facts'}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  }

  function drawTimeline() {
    history.sort((a, b) => a.seq - b.seq);
    mount(timeline, history.length ? history.map((ev) => h('li', {'data-event': ev.event},
      h('time', {datetime: ev.at}, time(ev.at)), h('strong', {}, ev.event),
      ev.percent ? ` ${ev.percent}%` : '', ev.reason ? h('div', {class: 'muted'}, ev.reason) : null))
      : h('li', {}, 'No events recorded.'));
  }

  let actionsKey = '';
  function drawActions() {
    if (!writable) return;
    // Only a change of state changes the actions: re-rendering on every
    // event would wipe what the user is typing and move the focus.
    const key = [gprStatus(g).label, isActive(g), isProvisioned(g), isQueued(g)].join('|');
    if (key === actionsKey) return;
    actionsKey = key;
    const busy = (b, fn) => async () => {
      b.disabled = true;
      showError(actionMsg, null);
      try {
        await fn();
      } catch (e) {
        showError(actionMsg, e);
      } finally {
        b.disabled = false;
      }
    };
    const kids = [];
    if (isActive(g)) {
      const name = h('input', {id: 'edit-name', value: g.gprName, autocomplete: 'off'});
      const prio = h('input', {id: 'edit-priority', type: 'number', min: 1, max: 300, value: g.priority});
      const save = h('button', {type: 'submit', id: 'edit-save', class: 'secondary'}, 'Save changes');
      const form = h('form', {class: 'row', novalidate: true}, field('Name', name), field('Priority', prio), h('div', {class: 'field'}, save));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        busy(save, async () => {
          const b = {gprId: id};
          if (name.value.trim() !== g.gprName) b.gprName = name.value.trim();
          if (Number(prio.value) !== g.priority) b.priority = prio.value === '' ? null : Number(prio.value);
          if (Object.keys(b).length === 1) return;
          await put('api/v1/gpr', b);
          toast('Request updated');
          refresh();
        })();
      });
      kids.push(form);
    }
    const buttons = [];
    if (isProvisioned(g)) {
      const b = h('button', {type: 'button', class: 'danger', id: 'early-release'}, 'Release early');
      b.addEventListener('click', busy(b, async () => {
        if (!await confirmAction(`Give the nodes of ${g.gprName} back now? Workloads on them will be stopped.`, 'Release early')) return;
        await put('api/v1/gpr', {gprId: id, earlyRelease: true});
        toast('Early release requested');
        refresh();
      }));
      buttons.push(b);
    }
    if (isQueued(g)) {
      const b = h('button', {type: 'button', class: 'danger', id: 'delete-gpr'}, 'Delete request');
      b.addEventListener('click', busy(b, async () => {
        if (!await confirmAction(`Delete the queued request ${g.gprName}?`, 'Delete')) return;
        await del('api/v1/gpr', {gprId: id});
        toast('Request deleted');
        ctx.navigate('');
      }));
      buttons.push(b);
    }
    if (buttons.length) kids.push(h('div', {class: 'actions'}, buttons));
    mount(actions, kids.length ? kids : h('p', {class: 'muted'}, 'Nothing can be changed in this state.'));
  }

  // ---- GPUs: the table of latest samples and live charts ----
  let charts = null;
  let chartTimer = 0;
  function stopCharts() {
    clearInterval(chartTimer);
    chartTimer = 0;
    if (charts) charts.destroy();
    charts = null;
  }
  function drawGPUs() {
    if (!isProvisioned(g)) {
      stopCharts();
      mount(gpuPanel, g.status.nodes.length
        ? h('p', {class: 'muted'}, `Nodes: ${g.status.nodes.join(', ')}. GPU charts show while the request holds its nodes.`)
        : h('p', {class: 'muted'}, 'No nodes yet: GPUs appear here once the request is provisioned.'));
      return;
    }
    if (charts) return;
    charts = gpuCharts({gprId: id}, 'gpr', {pollMs: 1000});
    mount(gpuPanel, charts.el);
    charts.start();
  }

  function draw() {
    drawFacts();
    drawActions();
    drawGPUs();
  }

  drawTimeline();
  draw();
  const tick = setInterval(() => {
    const el = document.getElementById('gpr-remaining');
    const rem = remaining(g);
    if (el && rem !== null) el.textContent = duration(rem);
  }, 1000);
  return () => {
    live.close();
    clearInterval(tick);
    stopCharts();
  };
}
