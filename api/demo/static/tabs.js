// Tabs over the page's lists on a narrow screen (ARIA's tabs pattern): one list shows under a bar that
// stays at the top, so each list is one tap away however long the one shown is. On a wide screen the
// stylesheet hides the bar and shows every list side by side.

const tabs = () => [...document.querySelectorAll('[role="tab"]')];

/** Show the panel with this id and select its tab; on a narrow screen scroll it under the bar when the
 * bar is stuck above it, and on a wide one, with reveal, scroll it into view. */
export function showPanel(id, { focus = false, reveal = false } = {}) {
  for (const tab of tabs()) {
    const selected = tab.getAttribute('aria-controls') === id;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute('aria-controls')).classList.toggle('inactive', !selected);
    if (selected) tab.querySelector('.badge')?.remove();
    if (selected && focus) tab.focus();
  }
  const bar = document.querySelector('[role="tablist"]');
  const panel = document.getElementById(id);
  if (getComputedStyle(bar).display === 'none') { // wide: every panel shows
    if (reveal) panel.scrollIntoView({ block: 'start' });
    return;
  }
  const below = bar.getBoundingClientRect().bottom;
  if (panel.getBoundingClientRect().top < below) {
    window.scrollBy(0, panel.getBoundingClientRect().top - below);
  }
}

/** Mark the tab of a panel that changed while another showed: "For you" after a rating in the search. */
export function flagPanel(id) {
  const tab = document.querySelector(`[role="tab"][aria-controls="${id}"]`);
  if (tab.getAttribute('aria-selected') === 'true' || tab.querySelector('.badge')) return;
  tab.append(' ', Object.assign(document.createElement('span'), { className: 'badge', textContent: 'updated' }));
}

/** Wire the tabs: a click selects one; arrows, Home and End move between them. */
export function wireTabs() {
  const all = tabs();
  for (const [i, tab] of all.entries()) {
    tab.addEventListener('click', () => showPanel(tab.getAttribute('aria-controls')));
    tab.addEventListener('keydown', (event) => {
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      showPanel(all[(to + all.length) % all.length].getAttribute('aria-controls'), { focus: true });
    });
  }
}
