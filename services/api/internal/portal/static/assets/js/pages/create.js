// Create a GPR: the choices come from the workspace's inventory (GET
// /api/v1/inventory?sliceName=); "Get wait time" asks POST /api/v1/gpr/waittime
// with the same body. The form does not second-guess the API: its
// validation messages are shown as the API words them.

import {get, post, qs, items} from '../api.js';
import {h, mount, field, check, select, showError, alertBox, toast} from '../dom.js';
import {composeDuration, relative, time, parseDuration, duration} from '../format.js';
import {canWrite} from '../session.js';
import {listWorkspaces} from './requests.js';

/** wide makes a form field span two columns of its grid. */
function wide(f) {
  f.classList.add('wide');
  return f;
}

const bands = [['low', 'Low (1-100)', 50], ['medium', 'Medium (101-200)', 150], ['high', 'High (201-300)', 250]];

export async function render(main, ctx) {
  const wss = (await listWorkspaces()).filter((w) => canWrite(ctx.session, w.name));
  if (!wss.length) {
    mount(main, h('h1', {}, 'New GPU request'), alertBox('error', 'You may not create GPU requests in any workspace.'));
    return;
  }
  const wsName = wss.some((w) => w.name === ctx.query.get('workspace')) ? ctx.query.get('workspace') : wss[0].name;
  const ws = wss.find((w) => w.name === wsName);
  let shapes = [];
  const invError = h('div');
  try {
    shapes = items(await get(`api/v1/inventory${qs({sliceName: wsName})}`));
  } catch (e) {
    showError(invError, e);
  }

  const el = {
    workspace: select({id: 'gpr-workspace', name: 'workspace'}, wss.map((w) => w.name), wsName),
    name: h('input', {id: 'gpr-name', name: 'gprName', autocomplete: 'off', placeholder: 'e.g. train-llm'}),
    cluster: select({id: 'gpr-cluster', name: 'cluster'}, [['', 'Automatic (any cluster of the workspace)'], ...(ws.clusters || [])], ''),
    shape: h('select', {id: 'gpr-shape', name: 'shape'}),
    gpus: h('input', {id: 'gpr-gpus', type: 'number', min: 1, value: 1, inputmode: 'numeric'}),
    nodes: h('input', {id: 'gpr-nodes', type: 'number', min: 1, value: 1, inputmode: 'numeric'}),
    memory: h('input', {id: 'gpr-memory', type: 'number', min: 0, value: 0, inputmode: 'numeric'}),
    band: select({id: 'gpr-band'}, bands.map(([v, l]) => [v, l]), 'medium'),
    priority: h('input', {id: 'gpr-priority', type: 'number', min: 1, max: 300, value: 150, inputmode: 'numeric'}),
    days: h('input', {id: 'gpr-days', type: 'number', min: 0, value: 0, inputmode: 'numeric'}),
    hours: h('input', {id: 'gpr-hours', type: 'number', min: 0, value: 1, inputmode: 'numeric'}),
    minutes: h('input', {id: 'gpr-minutes', type: 'number', min: 0, max: 59, value: 0, inputmode: 'numeric'}),
    idle: h('input', {id: 'gpr-idle', type: 'checkbox'}),
    idleMinutes: h('input', {id: 'gpr-idle-minutes', type: 'number', min: 1, value: 30, inputmode: 'numeric', disabled: true}),
    eviction: h('input', {id: 'gpr-eviction', type: 'checkbox'}),
    requeue: h('input', {id: 'gpr-requeue', type: 'checkbox'}),
  };
  const msg = h('div', {id: 'gpr-error'});
  const wait = h('div', {id: 'gpr-wait', 'aria-live': 'polite'});

  function fillShapes() {
    const cl = el.cluster.value;
    const opts = [['auto', 'Any shape (automatic GPU selection)']];
    shapes.forEach((s, i) => {
      if (cl && s.clusterName !== cl) return;
      opts.push([String(i), `${s.gpuShape} · ${s.instanceType} · ${s.gpuPerNode} GPUs × ${s.memoryPerGpu} GB · ${s.totalGpuNodes} node${s.totalGpuNodes === 1 ? '' : 's'} on ${s.clusterName}`]);
    });
    const keep = el.shape.value;
    mount(el.shape, opts.map(([v, l]) => h('option', {value: v, selected: v === keep}, l)));
    if (!opts.some(([v]) => v === keep)) el.shape.value = opts.length > 1 ? opts[1][0] : 'auto';
    applyShape();
  }
  function applyShape() {
    const s = shapes[Number(el.shape.value)];
    if (el.shape.value !== 'auto' && s) {
      el.gpus.max = s.gpuPerNode;
      el.nodes.max = s.totalGpuNodes;
      if (Number(el.gpus.value) > s.gpuPerNode || Number(el.gpus.value) < 1) el.gpus.value = s.gpuPerNode;
      el.memory.value = s.memoryPerGpu;
    } else {
      el.gpus.removeAttribute('max');
      el.nodes.removeAttribute('max');
    }
  }
  el.cluster.addEventListener('change', fillShapes);
  el.shape.addEventListener('change', applyShape);
  el.workspace.addEventListener('change', () => ctx.navigate(`requests/new${qs({workspace: el.workspace.value})}`, {replace: true}));
  el.band.addEventListener('change', () => {
    el.priority.value = bands.find((b) => b[0] === el.band.value)[2];
  });
  el.priority.addEventListener('input', () => {
    const p = Number(el.priority.value);
    if (p >= 1 && p <= 300) el.band.value = p > 200 ? 'high' : p > 100 ? 'medium' : 'low';
  });
  el.idle.addEventListener('change', () => {
    el.idleMinutes.disabled = !el.idle.checked;
  });

  function body() {
    const auto = el.shape.value === 'auto';
    const s = shapes[Number(el.shape.value)] || {};
    const num = (x) => (x.value === '' ? null : Number(x.value));
    return {
      gprName: el.name.value.trim(),
      sliceName: wsName,
      clusterName: el.cluster.value,
      preferredClusters: null,
      enableAutoClusterSelection: el.cluster.value === '',
      enableAutoGpuSelection: auto,
      numberOfGPUs: num(el.gpus),
      numberOfGPUNodes: num(el.nodes),
      instanceType: auto ? '' : s.instanceType,
      gpuShape: auto ? '' : s.gpuShape,
      memoryPerGpu: num(el.memory),
      exitDuration: composeDuration(el.days.value, el.hours.value, el.minutes.value),
      priority: num(el.priority),
      enforceIdleTimeOut: el.idle.checked,
      idleTimeOutDuration: el.idle.checked ? composeDuration(0, 0, el.idleMinutes.value) : null,
      enableEviction: el.eviction.checked,
      requeueOnFailure: el.requeue.checked,
    };
  }

  const waitButton = h('button', {type: 'button', class: 'secondary', id: 'gpr-waittime'}, 'Get wait time');
  const submit = h('button', {type: 'submit', id: 'gpr-submit'}, 'Create request');
  waitButton.addEventListener('click', async () => {
    showError(msg, null);
    mount(wait, h('span', {class: 'muted'}, 'Estimating…'));
    try {
      const b = body();
      delete b.gprName; // optional for an estimate (and limited to 40 characters there)
      const w = await post('api/v1/gpr/waittime', b);
      const waitMs = parseDuration(w.estimatedWaitTime);
      mount(wait, alertBox('info', waitMs === 0 && w.estimatedStartTime
        ? `It could start now (${time(w.estimatedStartTime)}).`
        : w.estimatedStartTime
          ? `Estimated wait ${duration(waitMs)}: it should start ${relative(w.estimatedStartTime)} (${time(w.estimatedStartTime)}).`
          : 'No estimate: the queue cannot say when nodes of this shape free up.'));
    } catch (e) {
      mount(wait);
      showError(msg, e);
    }
  });

  const form = h('form', {id: 'gpr-form', novalidate: true},
    h('fieldset', {}, h('legend', {}, 'Request'),
      h('div', {class: 'form-grid'},
        field('Workspace', el.workspace),
        field('Name', el.name, 'For people: up to 253 characters.'),
        field('Priority band', el.band),
        field('Priority', el.priority, '1-300; higher runs first.'))),
    h('fieldset', {}, h('legend', {}, 'GPUs'),
      invError,
      h('div', {class: 'form-grid'},
        field('Cluster', el.cluster),
        wide(field('Node shape', el.shape, 'GPU model, instance type, GPUs and memory per node, from the workspace inventory.')),
        field('GPUs per node', el.gpus),
        field('Nodes', el.nodes),
        field('Memory per GPU (GB)', el.memory, 'At least this much memory on each GPU.'))),
    h('fieldset', {}, h('legend', {}, 'Duration'),
      h('div', {class: 'form-grid'},
        field('Days', el.days), field('Hours', el.hours), field('Minutes', el.minutes)),
      h('div', {class: 'row'}, check('Release the nodes when their GPUs stay idle for', el.idle),
        field('Idle timeout (minutes)', el.idleMinutes))),
    h('fieldset', {}, h('legend', {}, 'Eviction'),
      check('Allow higher-priority requests to evict this one', el.eviction),
      check('Queue it again after a failure or an eviction', el.requeue)),
    msg, wait,
    h('div', {class: 'actions'}, waitButton, submit,
      h('a', {href: './', class: 'button secondary'}, 'Cancel')));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError(msg, null);
    submit.disabled = true;
    try {
      const r = await post('api/v1/gpr', body());
      toast(`Request ${r.gprId} created`);
      ctx.navigate(`requests/${r.gprId}`);
    } catch (err) {
      showError(msg, err);
      msg.scrollIntoView({block: 'nearest'});
    } finally {
      submit.disabled = false;
    }
  });

  mount(main, h('div', {class: 'page-head'}, h('h1', {}, 'New GPU request')), h('div', {class: 'panel'}, form));
  fillShapes();
  el.name.focus();
}
