// flags.js - native-looking flags, modelled on @forge/bridge showFlag:
//   showFlag({id, title, description, type, actions:[{text, href}], isAutoDismiss})
// Newest on top, closable, info/success auto-dismiss after 8 s (paused while
// hovered or focused), Escape closes the flag holding the focus (only while
// focus is inside the region: the host page's own Escape handling is left
// alone), an id is never shown twice. When the focused flag closes, focus
// goes to the next flag, else back where it came from, else to
// options.returnFocus - never to <body>.
// Everything is rendered as text (never HTML); links only for http(s) URLs.
// No inline styles: the look lives in flags.css.

const SVG_NS = 'http://www.w3.org/2000/svg';
export const AUTO_DISMISS_MS = 8000;
const TYPES = ['info', 'success', 'warning', 'error'];
const TYPE_LABEL = { info: 'Info', success: 'Success', warning: 'Warning', error: 'Error' };

// 24x24 icon paths (circle-i, check, triangle-!, octagon-!).
const ICONS = {
  info: ['M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20z', 'M11 10h2v7h-2zM11 6.5h2v2h-2z'],
  success: ['M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20z', 'M10.3 15.7 6.6 12l1.4-1.4 2.3 2.3 5.7-5.7 1.4 1.4z'],
  warning: ['M12 2.5 1.5 21h21z', 'M11 9h2v6h-2zM11 16.5h2v2h-2z'],
  error: ['M8 2h8l6 6v8l-6 6H8l-6-6V8z', 'M11 6.5h2v7h-2zM11 15.5h2v2h-2z'],
};

function icon(type) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '24');
  svg.setAttribute('height', '24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('flag__icon');
  const [shape, mark] = ICONS[type];
  const a = document.createElementNS(SVG_NS, 'path');
  a.setAttribute('d', shape);
  a.setAttribute('class', 'flag__icon-shape');
  const b = document.createElementNS(SVG_NS, 'path');
  b.setAttribute('d', mark);
  b.setAttribute('class', 'flag__icon-mark');
  svg.append(a, b);
  return svg;
}

/** An action href as a safe absolute URL, or null (javascript:, data:, garbage). */
export function safeHref(href, base = document.baseURI) {
  if (typeof href !== 'string' || !href) return null;
  try {
    const u = new URL(href, base);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

let seqNo = 0;

export class FlagGroup {
  /**
   * region: the aria-live container (a <div aria-live="polite">).
   * options.resolveHref(href) -> href: rewrite action links (the demo maps /browse/KEY to itself).
   * options.autoDismissMs: 8000.
   * options.returnFocus: element (or () => element) focused when the last
   *   focused flag closes and the element focus came from is gone.
   */
  constructor(region, options = {}) {
    this.region = region;
    this.resolveHref = options.resolveHref || ((h) => h);
    this.autoDismissMs = options.autoDismissMs ?? AUTO_DISMISS_MS;
    this.returnFocus = options.returnFocus || null;
    this.cameFrom = null; // the element outside the region that had focus before it
    this.shownIds = new Set(); // every id ever shown: never twice
    this.open = new Map(); // id -> {el, timer, remaining, startedAt}
    // Listening on the region, not the document: Escape pressed elsewhere
    // belongs to the host page (its dialogs, menus) and is not touched.
    this.onKey = (e) => {
      if (e.key !== 'Escape' || e.defaultPrevented) return;
      const el = e.target instanceof Element ? e.target.closest('.flag') : null;
      if (!el || !this.region.contains(el)) return;
      e.preventDefault();
      this.close(el.dataset.flagId);
    };
    this.onFocusIn = (e) => {
      const from = e.relatedTarget;
      if (from instanceof HTMLElement && !this.region.contains(from)) this.cameFrom = from;
    };
    region.addEventListener('keydown', this.onKey);
    region.addEventListener('focusin', this.onFocusIn);
  }

  /** Removes the listeners (flags stay in the DOM). */
  destroy() {
    this.region.removeEventListener('keydown', this.onKey);
    this.region.removeEventListener('focusin', this.onFocusIn);
  }

  get size() {
    return this.open.size;
  }

  /** Shows a flag; returns {close()} or null when this id was shown before. */
  show({ id, title, description = '', type = 'info', actions = [], isAutoDismiss } = {}) {
    if (id === undefined || id === null || id === '') throw new Error('"id" must be defined in flag options');
    const key = String(id);
    if (this.shownIds.has(key)) return null;
    this.shownIds.add(key);
    if (!TYPES.includes(type)) type = 'info';
    if (isAutoDismiss === undefined) isAutoDismiss = type === 'info' || type === 'success';
    const n = ++seqNo;

    const el = document.createElement('section');
    el.className = `flag flag--${type}`;
    el.dataset.flagId = key;
    el.dataset.type = type;
    // Errors and warnings interrupt (alert = assertive); info and success wait (status = polite).
    el.setAttribute('role', type === 'error' || type === 'warning' ? 'alert' : 'status');
    el.setAttribute('aria-labelledby', `flag-title-${n}`);
    el.setAttribute('aria-describedby', `flag-desc-${n}`);

    const body = document.createElement('div');
    body.className = 'flag__body';
    const h = document.createElement('h2');
    h.className = 'flag__title';
    h.id = `flag-title-${n}`;
    const sr = document.createElement('span');
    sr.className = 'sr-only';
    sr.textContent = `${TYPE_LABEL[type]}: `;
    h.append(sr, document.createTextNode(String(title ?? '')));
    const p = document.createElement('p');
    p.className = 'flag__description';
    p.id = `flag-desc-${n}`;
    p.textContent = String(description ?? '');
    body.append(h, p);

    const list = Array.isArray(actions) ? actions : [];
    if (list.length) {
      const ul = document.createElement('ul');
      ul.className = 'flag__actions';
      for (const a of list) {
        if (!a || typeof a.text !== 'string') continue;
        const li = document.createElement('li');
        const href = safeHref(this.resolveHref(a.href));
        if (href) {
          const link = document.createElement('a');
          link.className = 'flag__action';
          link.href = href;
          link.textContent = a.text;
          li.append(link);
        } else {
          const span = document.createElement('span');
          span.className = 'flag__action flag__action--disabled';
          span.textContent = a.text;
          li.append(span);
        }
        ul.append(li);
      }
      body.append(ul);
    }

    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'flag__close';
    close.setAttribute('aria-label', `Dismiss: ${String(title ?? '')}`);
    close.textContent = '\u00d7';
    close.addEventListener('click', () => this.close(key));

    el.append(icon(type), body, close);
    // Newest first.
    this.region.prepend(el);

    const entry = { el, timer: null, remaining: this.autoDismissMs, startedAt: 0, shownAt: performance.now() };
    this.open.set(key, entry);
    if (isAutoDismiss) {
      const pause = () => {
        if (!entry.timer) return;
        clearTimeout(entry.timer);
        entry.timer = null;
        entry.remaining -= performance.now() - entry.startedAt;
      };
      const resume = () => {
        if (entry.timer || !this.open.has(key)) return;
        if (el.matches(':hover') || el.contains(document.activeElement)) return;
        entry.startedAt = performance.now();
        entry.timer = setTimeout(() => this.close(key), Math.max(0, entry.remaining));
      };
      el.addEventListener('mouseenter', pause);
      el.addEventListener('focusin', pause);
      el.addEventListener('mouseleave', resume);
      el.addEventListener('focusout', () => setTimeout(resume));
      entry.startedAt = performance.now();
      entry.timer = setTimeout(() => this.close(key), entry.remaining);
    }
    this.region.dispatchEvent(new CustomEvent('flagshown', { detail: { id: key, type } }));
    return { close: async () => this.close(key) };
  }

  close(id) {
    const key = String(id);
    const entry = this.open.get(key);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.open.delete(key);
    const hadFocus = entry.el.contains(document.activeElement);
    // The flag below the closed one (older), else the one above.
    const neighbour = entry.el.nextElementSibling || entry.el.previousElementSibling;
    entry.el.remove();
    if (hadFocus) this._moveFocus(neighbour);
    this.region.dispatchEvent(new CustomEvent('flagclosed', { detail: { id: key } }));
    return true;
  }

  _moveFocus(neighbour) {
    // Keep keyboard users in the stack: the neighbouring flag's first control.
    const next = neighbour && this.region.contains(neighbour) ? neighbour.querySelector('a, button') : null;
    if (next) {
      next.focus();
      return;
    }
    // The stack is empty: back to where focus came from, else the fallback.
    const fallback = typeof this.returnFocus === 'function' ? this.returnFocus() : this.returnFocus;
    for (const el of [this.cameFrom, fallback]) {
      if (el && el.isConnected && typeof el.focus === 'function') {
        el.focus();
        if (document.activeElement === el) return;
      }
    }
  }

  closeNewest() {
    const first = this.region.querySelector('.flag');
    return first ? this.close(first.dataset.flagId) : false;
  }
}
