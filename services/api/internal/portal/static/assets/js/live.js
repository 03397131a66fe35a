// Live updates: server-sent events from GET /api/v1/events/stream, one "gpr"
// event per GPR transition of the workspaces asked for. The browser
// reconnects by itself; onOpen runs on every (re)connection so a page can
// re-read what it may have missed while disconnected.

import {url, qs} from './api.js';
import {h} from './dom.js';

/**
 * subscribe opens the stream for workspaces (all the caller may see when
 * empty) and returns {close, indicator}: indicator is a small element showing
 * the connection state (data-state="connecting|open|error").
 */
export function subscribe(workspaces, onEvent, onOpen) {
  const indicator = h('span', {class: 'live', 'data-state': 'connecting', id: 'live'}, 'Connecting…');
  const es = new EventSource(url(`api/v1/events/stream${qs({workspace: workspaces})}`));
  const state = (s, text) => {
    indicator.dataset.state = s;
    indicator.textContent = text;
  };
  es.addEventListener('open', () => {
    state('open', 'Live');
    if (onOpen) onOpen();
  });
  es.addEventListener('error', () => state(es.readyState === EventSource.CLOSED ? 'error' : 'connecting',
    es.readyState === EventSource.CLOSED ? 'Live updates stopped' : 'Reconnecting…'));
  es.addEventListener('gpr', (e) => {
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch {
      return;
    }
    onEvent(ev);
  });
  return {close: () => es.close(), indicator};
}

/** debounce calls fn once, ms after the last of a burst of calls. */
export function debounce(fn, ms) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
