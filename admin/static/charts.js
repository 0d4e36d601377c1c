// movierec admin: line charts of values per epoch as inline SVG, drawn at the figure's own pixel width
// (so labels keep their CSS size on any screen), with round ticks on both axes, a legend naming each
// series by colour and marker shape, the values of an epoch on hover or keyboard focus (arrow keys
// move), and the same values as a table for screen readers and copying.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2456c7", "#1a7f43", "#b3261e", "#946200", "#6b3fa0", "#00717a"];
  const SHAPES = ["circle", "square", "triangle", "diamond"];
  const HEIGHT = [230, 0.3, 320]; // the least, the share of the width, the most (px)
  const TICK_SPACING = { x: 40, y: 42 }; // the fewest pixels between two ticks' labels

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function html(name, attrs, text) {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The smallest of 1, 2, 2.5, 5 (1, 2, 5 for whole numbers) times a power of ten that splits span
  // into at most count steps.
  function niceStep(span, count, whole) {
    const raw = span / Math.max(count, 1);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const factors = whole ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    const step = factors.find((f) => f * magnitude >= raw - 1e-12) * magnitude;
    return whole ? Math.max(1, Math.round(step)) : step;
  }

  // Round ticks over [lo, hi]: {lo, hi, values, digits}. Values axes widen to the outer ticks; epoch
  // axes (whole) keep their ends and mark the multiples of the step inside them.
  function ticks(lo, hi, count, whole) {
    if (hi - lo < 1e-12) {
      const pad = whole ? 1 : Math.abs(lo) * 0.05 || 0.05;
      hi = lo + pad;
      if (!whole) lo -= pad;
    }
    const step = niceStep(hi - lo, count, whole);
    const first = whole ? Math.ceil(lo / step) : Math.floor(lo / step + 1e-9);
    const last = whole ? Math.floor(hi / step) : Math.ceil(hi / step - 1e-9);
    const values = [];
    for (let k = first; k <= last; k++) values.push(Number((k * step).toPrecision(12)));
    const digits = whole ? 0 : (step.toPrecision(12).replace(/0+$/, "").split(".")[1] || "").length;
    return whole ? { lo, hi, values, digits } : { lo: values[0], hi: values[values.length - 1], values, digits };
  }

  function marker(shape, x, y, size, color) {
    const s = size;
    if (shape === "square") return el("rect", { x: x - s * 0.85, y: y - s * 0.85, width: s * 1.7, height: s * 1.7, fill: color });
    if (shape === "triangle") return el("polygon", { points: [x, y - s * 1.15, x + s, y + s * 0.75, x - s, y + s * 0.75].join(" "), fill: color });
    if (shape === "diamond") return el("polygon", { points: [x, y - s * 1.2, x + s * 1.2, y, x, y + s * 1.2, x - s * 1.2, y].join(" "), fill: color });
    return el("circle", { cx: x, cy: y, r: s, fill: color });
  }

  function fmt(value, digits) {
    return Number(value).toFixed(digits);
  }

  // The parts a figure gets once: tooltip, legend, table; the SVG is in the page already.
  function parts(figure) {
    if (figure._parts) return figure._parts;
    const svg = figure.querySelector("svg");
    svg.setAttribute("tabindex", "0");
    const tip = html("div", { class: "tip", role: "status", "aria-live": "polite" });
    tip.hidden = true;
    const legend = html("ul", { class: "legend" });
    const details = html("details", { class: "values" });
    details.appendChild(html("summary", {}, "The values as a table"));
    const scroll = html("div", { class: "scroll" });
    const table = html("table", { class: "list small" });
    scroll.appendChild(table);
    details.appendChild(scroll);
    figure.append(tip, legend, details);
    svg.addEventListener("mousemove", (event) => point(figure, event.clientX));
    svg.addEventListener("mouseleave", () => { if (document.activeElement !== svg) hide(figure); });
    svg.addEventListener("focus", () => select(figure, figure._state.active ?? 0));
    svg.addEventListener("blur", () => hide(figure));
    svg.addEventListener("keydown", (event) => {
      const state = figure._state;
      const moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1 };
      let index = state.active ?? 0;
      if (event.key in moves) index += moves[event.key];
      else if (event.key === "Home") index = 0;
      else if (event.key === "End") index = state.epochs.length - 1;
      else return;
      event.preventDefault();
      select(figure, Math.max(0, Math.min(state.epochs.length - 1, index)));
    });
    if (window.ResizeObserver) {
      let width = 0;
      new ResizeObserver(() => {
        const now = Math.round(svg.getBoundingClientRect().width);
        if (figure._state && now && Math.abs(now - width) > 1) draw(figure);
        width = now;
      }).observe(svg);
    }
    figure._parts = { svg, tip, legend, table };
    return figure._parts;
  }

  // The epoch under the pointer: the nearest with a value.
  function point(figure, clientX) {
    const state = figure._state;
    if (!state || !state.epochs.length) return;
    const box = figure._parts.svg.getBoundingClientRect();
    const x = clientX - box.left;
    let nearest = 0;
    state.epochs.forEach((epoch, i) => {
      if (Math.abs(state.sx(epoch) - x) < Math.abs(state.sx(state.epochs[nearest]) - x)) nearest = i;
    });
    select(figure, nearest);
  }

  function select(figure, index) {
    const state = figure._state;
    const { svg, tip } = figure._parts;
    if (!state || !state.epochs.length) return;
    state.active = index;
    const epoch = state.epochs[index];
    svg.querySelectorAll(".point.active").forEach((node) => node.classList.remove("active"));
    svg.querySelectorAll('.point[data-epoch="' + epoch + '"]').forEach((node) => node.classList.add("active"));
    const guide = svg.querySelector(".guide");
    guide.setAttribute("x1", state.sx(epoch));
    guide.setAttribute("x2", state.sx(epoch));
    guide.removeAttribute("visibility");
    tip.textContent = "";
    tip.appendChild(html("strong", {}, "Epoch " + epoch + (epoch === state.best ? " (kept)" : "")));
    state.series.forEach((s, i) => {
      const found = s.points.find((p) => p[0] === epoch);
      if (!found) return;
      const line = html("span", { class: "tip-row" });
      line.appendChild(legendMark(i));
      line.append(s.label + ": " + fmt(found[1], state.digits));
      tip.appendChild(line);
    });
    tip.hidden = false;
    const width = svg.getBoundingClientRect().width;
    const left = state.sx(epoch) + 12;
    tip.classList.toggle("left", left + tip.offsetWidth > width);
    tip.style.left = (left + tip.offsetWidth > width ? Math.max(0, state.sx(epoch) - 12 - tip.offsetWidth) : left) + "px";
  }

  function hide(figure) {
    if (!figure._parts) return;
    figure._parts.tip.hidden = true;
    const guide = figure._parts.svg.querySelector(".guide");
    if (guide) guide.setAttribute("visibility", "hidden");
    figure._parts.svg.querySelectorAll(".point.active").forEach((node) => node.classList.remove("active"));
  }

  function legendMark(i) {
    const mark = el("svg", { width: 22, height: 14, viewBox: "0 0 22 14", "aria-hidden": "true", class: "mark" });
    mark.appendChild(el("line", { x1: 1, y1: 7, x2: 21, y2: 7, stroke: COLORS[i % COLORS.length], "stroke-width": 2 }));
    mark.appendChild(marker(SHAPES[i % SHAPES.length], 11, 7, 4, COLORS[i % COLORS.length]));
    return mark;
  }

  function draw(figure) {
    const state = figure._state;
    const { svg } = figure._parts;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = Math.round(svg.getBoundingClientRect().width) || 400;
    const H = Math.round(Math.min(HEIGHT[2], Math.max(HEIGHT[0], W * HEIGHT[1])));
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const all = state.series.flatMap((s) => s.points);
    if (all.length === 0) {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, state.empty));
      return;
    }
    const ys = all.map((p) => p[1]);
    const yt = ticks(Math.min(...ys), Math.max(...ys), Math.floor((H - 60) / TICK_SPACING.y), false);
    state.digits = Math.max(yt.digits + 1, state.minDigits);
    const labelChars = Math.max(...yt.values.map((v) => fmt(v, yt.digits).length));
    const L = 26 + labelChars * 8, R = 14, T = 12, B = 44;
    const epochs = all.map((p) => p[0]);
    const xt = ticks(Math.min(...epochs), Math.max(...epochs, state.xMax || 0), Math.floor((W - L - R) / TICK_SPACING.x), true);
    const sx = (x) => L + ((x - xt.lo) / (xt.hi - xt.lo)) * (W - L - R);
    const sy = (y) => T + (1 - (y - yt.lo) / (yt.hi - yt.lo)) * (H - T - B);
    state.sx = sx;
    state.epochs = [...new Set(epochs)].sort((a, b) => a - b);
    const axes = el("g", { class: "axes" });
    yt.values.forEach((v) => {
      axes.appendChild(el("line", { x1: L, y1: sy(v), x2: W - R, y2: sy(v), class: "grid" }));
      axes.appendChild(el("text", { x: L - 6, y: sy(v) + 4.5, "text-anchor": "end", class: "tick y" }, fmt(v, yt.digits)));
    });
    xt.values.forEach((v) => {
      axes.appendChild(el("line", { x1: sx(v), y1: H - B, x2: sx(v), y2: H - B + 5, class: "axis" }));
      axes.appendChild(el("text", { x: sx(v), y: H - B + 19, "text-anchor": "middle", class: "tick x" }, String(v)));
    });
    axes.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    axes.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    axes.appendChild(el("text", { x: L + (W - L - R) / 2, y: H - 6, "text-anchor": "middle", class: "title" }, "epoch"));
    const yTitle = el("text", { x: 0, y: 0, "text-anchor": "middle", class: "title", transform: "translate(13 " + (T + (H - T - B) / 2) + ") rotate(-90)" }, state.yTitle);
    axes.appendChild(yTitle);
    svg.appendChild(axes);
    if (state.best !== undefined && state.best >= xt.lo && state.best <= xt.hi) {
      svg.appendChild(el("line", { x1: sx(state.best), y1: T, x2: sx(state.best), y2: H - B, class: "best" }));
    }
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "guide", visibility: "hidden" }));
    state.series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const g = el("g", { class: "series", "data-label": s.label });
      const pts = s.points.map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
      g.appendChild(el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 }));
      s.points.forEach((p) => {
        const dot = marker(SHAPES[i % SHAPES.length], sx(p[0]), sy(p[1]), 4.5, color);
        dot.setAttribute("class", "point");
        dot.setAttribute("data-epoch", p[0]);
        g.appendChild(dot);
      });
      svg.appendChild(g);
    });
    if (state.active !== undefined && !figure._parts.tip.hidden) select(figure, Math.min(state.active, state.epochs.length - 1));
  }

  function fillLegend(figure) {
    const { legend } = figure._parts;
    legend.textContent = "";
    figure._state.series.forEach((s, i) => {
      const item = html("li");
      item.appendChild(legendMark(i));
      item.append(s.label);
      legend.appendChild(item);
    });
  }

  function fillTable(figure) {
    const state = figure._state;
    const { table } = figure._parts;
    table.textContent = "";
    table.appendChild(html("caption", { class: "visually-hidden" }, state.yTitle + " per epoch"));
    const head = html("tr");
    head.appendChild(html("th", { scope: "col" }, "Epoch"));
    state.series.forEach((s) => head.appendChild(html("th", { scope: "col" }, s.label)));
    table.appendChild(html("thead")).appendChild(head);
    const body = table.appendChild(html("tbody"));
    const epochs = [...new Set(state.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    epochs.forEach((epoch) => {
      const row = html("tr");
      row.appendChild(html("th", { scope: "row" }, String(epoch)));
      state.series.forEach((s) => {
        const found = s.points.find((p) => p[0] === epoch);
        row.appendChild(html("td", {}, found ? fmt(found[1], 4) : "–"));
      });
      body.appendChild(row);
    });
  }

  // series: [{label, points: [[epoch, value], ...]}]; options: title (else the figure's data-title),
  // yTitle, best (the kept epoch, dashed), xMax (the last epoch planned), empty (what an empty chart says).
  function plot(figure, series, options) {
    const { svg } = parts(figure);
    const previous = figure._state || {};
    figure._state = Object.assign({ yTitle: "", empty: "no finished epoch yet", minDigits: 4 }, options || {}, {
      series: series, active: previous.active, epochs: [], sx: () => 0,
    });
    const state = figure._state;
    const count = state.series.length;
    svg.setAttribute("aria-label", (state.title || figure.dataset.title || state.yTitle) + (count ? ", " + count + " series" : "") +
      " per epoch. Focus it and use the arrow keys to read each epoch's values, or open the table below.");
    draw(figure);
    fillLegend(figure);
    fillTable(figure);
  }

  window.movierecCharts = { plot: plot };
})();
