// Small DOM helpers. Every text goes in as a text node (never innerHTML), so
// names and messages from the API cannot inject markup.

const booleanAttrs = new Set(['disabled', 'hidden', 'checked', 'required', 'selected', 'readonly', 'multiple', 'open', 'novalidate', 'autofocus']);

/**
 * h builds an element: h('button', {class: 'x', onclick: fn}, 'Label').
 * Attributes named on* become listeners; booleans set or drop the attribute;
 * null and undefined are skipped; children may be strings, numbers, nodes,
 * arrays of them, or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false && !booleanAttrs.has(k)) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value') {
      el.value = v;
    } else if (k === 'style') {
      Object.assign(el.style, v); // CSSOM, allowed by the CSP (style attributes are not)
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (booleanAttrs.has(k)) {
      if (v) el.setAttribute(k, '');
      if (k === 'checked') el.checked = !!v;
      if (k === 'selected') el.selected = !!v;
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** mount replaces the children of el. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** uid returns a page-unique id for label/control pairs. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * field is a labelled control: field('Name', h('input', {...}), 'hint').
 * The control gets an id (unless it has one) that the label points to, and
 * the hint is tied to it with aria-describedby.
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const kids = [h('label', {for: control.id}, label), control];
  if (hint) {
    const hid = control.id + '-hint';
    control.setAttribute('aria-describedby', hid);
    kids.push(h('div', {class: 'hint', id: hid}, hint));
  }
  return h('div', {class: 'field'}, kids);
}

/** check is a labelled checkbox. */
export function check(label, input) {
  if (!input.id) input.id = uid();
  return h('div', {class: 'field'}, h('label', {class: 'check', for: input.id}, input, label));
}

/** select builds a <select> from [value, label] pairs (or plain values). */
export function select(attrs, options, selected) {
  return h('select', attrs, options.map((o) => {
    const [v, l] = Array.isArray(o) ? o : [o, o];
    return h('option', {value: v, selected: String(v) === String(selected)}, l);
  }));
}

/** alert is a message box; errors are announced by screen readers. */
export function alertBox(kind, message) {
  return h('div', {class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, message);
}

/** showError puts err's message (an API message when there is one) into box. */
export function showError(box, err) {
  mount(box, err ? alertBox('error', err.message || String(err)) : null);
}

/** toast shows a short message in the corner for a few seconds. */
export function toast(message, kind = 'info') {
  const host = document.getElementById('toasts');
  const t = h('div', {class: `toast ${kind}`}, message);
  host.append(t);
  setTimeout(() => t.remove(), 4000);
}

/**
 * confirmAction asks with the page's <dialog> and resolves true when the
 * user confirms. The dialog is modal, traps focus and closes on Escape.
 */
export function confirmAction(message, okLabel = 'Confirm') {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = message;
  document.getElementById('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), {once: true});
    dlg.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

/**
 * tabs builds an accessible tab list (arrow keys move between tabs).
 * items: [{id, label, render(panel)}]; onSelect(id) is called on change.
 */
export function tabs(label, items, selected, onSelect) {
  const list = h('div', {role: 'tablist', 'aria-label': label});
  const panels = [];
  const buttons = items.map((it, i) => {
    const b = h('button', {
      role: 'tab', type: 'button', id: `tab-${it.id}`, 'aria-controls': `panel-${it.id}`,
      'aria-selected': String(it.id === selected), tabindex: it.id === selected ? '0' : '-1',
      onclick: () => choose(it.id, true),
      onkeydown: (e) => {
        const d = {ArrowRight: 1, ArrowLeft: -1}[e.key];
        if (d) {
          e.preventDefault();
          const next = items[(i + d + items.length) % items.length];
          choose(next.id, true);
          document.getElementById(`tab-${next.id}`).focus();
        }
      },
    }, it.label);
    list.append(b);
    const p = h('div', {role: 'tabpanel', id: `panel-${it.id}`, 'aria-labelledby': `tab-${it.id}`, hidden: it.id !== selected});
    panels.push(p);
    return b;
  });
  const rendered = new Set();
  function choose(id, user) {
    items.forEach((it, i) => {
      const on = it.id === id;
      buttons[i].setAttribute('aria-selected', String(on));
      buttons[i].tabIndex = on ? 0 : -1;
      panels[i].hidden = !on;
      if (on && !rendered.has(id)) {
        rendered.add(id);
        it.render(panels[i]);
      }
    });
    if (user && onSelect) onSelect(id);
  }
  choose(selected, false);
  return h('div', {}, list, panels);
}

/** copyText copies s to the clipboard, falling back to a selection copy where the Clipboard API is unavailable (plain HTTP). */
export async function copyText(s, input) {
  try {
    await navigator.clipboard.writeText(s);
    return true;
  } catch {
    if (input) {
      input.select();
      return document.execCommand && document.execCommand('copy');
    }
    return false;
  }
}

/** hiddenText is text for screen readers only (an empty-looking header cell). */
export function hiddenText(s) {
  return h('span', {class: 'visually-hidden'}, s);
}
