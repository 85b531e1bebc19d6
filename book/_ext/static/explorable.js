/* Explorable figures: sliders that pick among curves a chapter computed when the book was
   built, drawn as SVG. No kernel, no network, no library: the page's own data (a JSON
   script inside each <figure class="explorable">) and this file are all it needs.

   The data: {controls: [{name, label, values, initial}], readout: {key: text},
   panels: [panel]}. A panel is {type: "lines", xlabel, ylabel, ylog, ylim,
   xlog, x (shared by the series that give none), series: {key: [{label, x, y}]}} or {type: "heatmap", xlabel, ylabel, x, y, z,
   marker: [control for x, control for y], legend}. A key is the controls' current value
   indices joined by commas; the panel shows the series of the current key. */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
  const WIDTH = 420, HEIGHT = 260;
  const MARGIN = {left: 52, right: 12, top: 12, bottom: 40};

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({x: x, y: y}, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function format(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
    return String(Number(v.toPrecision(3)));
  }

  function ticks(lo, hi, log) {
    if (log) {
      const out = [];
      for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) out.push(10 ** e);
      return out;
    }
    const span = hi - lo, raw = span / 5, mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => span / s <= 6);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  /* The axes of a panel: scales from data to pixels, with ticks and labels drawn. */
  function axes(svg, panel, xlo, xhi, ylo, yhi) {
    const w = WIDTH - MARGIN.left - MARGIN.right, h = HEIGHT - MARGIN.top - MARGIN.bottom;
    const xlog = !!panel.xlog, ylog = !!panel.ylog;
    const fx = v => xlog ? Math.log10(v) : v, fy = v => ylog ? Math.log10(v) : v;
    const sx = v => MARGIN.left + (fx(v) - fx(xlo)) / (fx(xhi) - fx(xlo)) * w;
    const sy = v => MARGIN.top + h - (fy(v) - fy(ylo)) / (fy(yhi) - fy(ylo)) * h;
    const g = el("g", {class: "explorable-axes"}, svg);
    el("rect", {x: MARGIN.left, y: MARGIN.top, width: w, height: h, class: "explorable-frame"}, g);
    for (const v of ticks(xlo, xhi, xlog)) {
      el("line", {x1: sx(v), x2: sx(v), y1: MARGIN.top + h, y2: MARGIN.top + h + 4}, g);
      text(g, sx(v), MARGIN.top + h + 15, format(v), {"text-anchor": "middle"});
    }
    for (const v of ticks(ylo, yhi, ylog)) {
      el("line", {x1: MARGIN.left - 4, x2: MARGIN.left, y1: sy(v), y2: sy(v)}, g);
      text(g, MARGIN.left - 6, sy(v) + 4, format(v), {"text-anchor": "end"});
    }
    text(g, MARGIN.left + w / 2, HEIGHT - 4, panel.xlabel, {"text-anchor": "middle", class: "explorable-label"});
    text(g, 12, MARGIN.top + h / 2, panel.ylabel,
         {"text-anchor": "middle", class: "explorable-label", transform: `rotate(-90 12 ${MARGIN.top + h / 2})`});
    return {sx, sy, w, h};
  }

  function drawLines(svg, panel, key, legend) {
    const series = (panel.series[key] || []).map(s => Object.assign({x: panel.x}, s));
    const xs = series.flatMap(s => s.x), ys = series.flatMap(s => s.y);
    const xlo = Math.min(...xs), xhi = Math.max(...xs);
    let [ylo, yhi] = panel.ylim || [Math.min(...ys), Math.max(...ys)];
    if (ylo === yhi) { ylo -= 1; yhi += 1; }
    const {sx, sy, w, h} = axes(svg, panel, xlo, xhi, ylo, yhi);
    const clip = `${svg.id}-clip`;
    el("rect", {x: MARGIN.left, y: MARGIN.top, width: w, height: h}, el("clipPath", {id: clip}, el("defs", {}, svg)));
    const plot = el("g", {"clip-path": `url(#${clip})`}, svg);
    series.forEach((s, i) => {
      // Far outside the axes a diverging curve is cut, so that its path stays finite.
      const span = yhi - ylo;
      const clamp = panel.ylog ? v => Math.min(Math.max(v, ylo / 10), yhi * 10)
                               : v => Math.min(Math.max(v, ylo - span), yhi + span);
      const d = s.x.map((x, j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(clamp(s.y[j])).toFixed(1)}`).join("");
      el("path", {d: d, stroke: COLORS[i % COLORS.length], class: "explorable-series"}, plot);
      const entry = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "explorable-swatch";
      swatch.style.background = COLORS[i % COLORS.length];
      entry.append(swatch, s.label);
      legend.appendChild(entry);
    });
  }

  /* Rates below one shade from dark (fast) to light (slow); one and above is grey. */
  function shade(v) {
    if (!(v < 1)) return "#9a9a9a";
    const t = Math.max(0, Math.min(1, v));
    const a = [13, 8, 135], b = [240, 249, 33];
    return `rgb(${a.map((c, i) => Math.round(c + (b[i] - c) * t)).join(",")})`;
  }

  function drawHeatmap(svg, panel, indices, controls) {
    const {x, y, z} = panel;
    const dx = (x[1] - x[0]) / 2, dy = (y[1] - y[0]) / 2;
    const {sx, sy} = axes(svg, panel, x[0] - dx, x[x.length - 1] + dx, y[0] - dy, y[y.length - 1] + dy);
    const cells = el("g", {class: "explorable-cells"}, svg);
    const cw = sx(x[1]) - sx(x[0]), ch = sy(y[0]) - sy(y[1]);
    z.forEach((row, j) => row.forEach((v, i) => {
      el("rect", {x: (sx(x[i]) - cw / 2).toFixed(2), y: (sy(y[j]) - ch / 2).toFixed(2),
                  width: (cw + 0.5).toFixed(2), height: (ch + 0.5).toFixed(2), fill: shade(v)}, cells);
    }));
    svg.insertBefore(cells, svg.querySelector(".explorable-axes"));
    const [cx, cy] = panel.marker;
    const mx = controls.find(c => c.name === cx), my = controls.find(c => c.name === cy);
    el("circle", {cx: sx(mx.values[indices[cx]]), cy: sy(my.values[indices[cy]]), r: 6,
                  class: "explorable-marker"}, svg);
    if (panel.legend) text(svg, MARGIN.left + 4, MARGIN.top + 14, panel.legend, {class: "explorable-note"});
  }

  function build(figure) {
    const data = JSON.parse(figure.querySelector("script[type='application/json']").textContent);
    const indices = {};
    const form = document.createElement("div");
    form.className = "explorable-controls";
    figure.insertBefore(form, figure.firstChild);
    const plots = document.createElement("div");
    plots.className = "explorable-panels";
    form.after(plots);
    const readout = document.createElement("p");
    readout.className = "explorable-readout";
    readout.setAttribute("aria-live", "polite");
    plots.after(readout);

    function draw() {
      const key = data.controls.map(c => indices[c.name]).join(",");
      plots.replaceChildren();
      data.panels.forEach((panel, p) => {
        const cell = document.createElement("div");
        cell.className = "explorable-cell";
        const svg = el("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", id: `${figure.id}-panel${p}`,
                               class: "explorable-panel"});
        const legend = document.createElement("div");
        legend.className = "explorable-legend";
        const setting = data.controls.map(c => `${c.label} = ${format(c.values[indices[c.name]])}`).join(", ");
        svg.setAttribute("aria-label", `${panel.ylabel} against ${panel.xlabel}, for ${setting}`);
        cell.append(svg, legend);
        plots.appendChild(cell);
        if (panel.type === "heatmap") drawHeatmap(svg, panel, indices, data.controls);
        else drawLines(svg, panel, key, legend);
      });
      readout.textContent = (data.readout && data.readout[key]) || "";
      figure.dataset.key = key;
    }

    data.controls.forEach(control => {
      const id = `${figure.id}-${control.name}`;
      indices[control.name] = control.initial;
      const wrap = document.createElement("div");
      wrap.className = "explorable-control";
      const label = document.createElement("label");
      label.htmlFor = id;
      const value = document.createElement("output");
      value.htmlFor = id;
      const input = document.createElement("input");
      Object.assign(input, {type: "range", id: id, min: 0, max: control.values.length - 1, step: 1,
                            value: control.initial});
      input.dataset.control = control.name;
      const show = () => { value.textContent = format(control.values[indices[control.name]]); };
      input.addEventListener("input", () => { indices[control.name] = Number(input.value); show(); draw(); });
      label.append(control.label + " ", value);
      wrap.append(label, input);
      form.appendChild(wrap);
      show();
    });
    draw();
  }

  function start() {
    document.querySelectorAll("figure.explorable").forEach(build);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
