// Line charts drawn as inline SVG: no library. A chart keeps its data in `data-series` (JSON),
// so what it shows can be read back (the browser tests do).

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 180, PAD_L = 48, PAD_B = 20, PAD_T = 8, PAD_R = 8;
export const COLORS = ["#0b5cad", "#9a6700", "#b3261e", "#6639ba", "#1a7f37", "#bf3989", "#57606a"];

function svgEl(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// An empty chart: an <svg> element (SVG's namespace, so its children are drawn) labelled for
// screen readers.
export function chartSvg(id, label) {
  return svgEl("svg", { id, role: "img", "aria-label": label, viewBox: `0 0 ${W} ${H}` });
}

// Draw `series` ([{name, points: [[tMs, value], ...]}]) into `svg`, replacing what was there.
export function drawLines(svg, series, { unit = "" } = {}) {
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("data-series", JSON.stringify(series));
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  const now = Date.now();
  const t0 = all.length ? Math.min(...all.map((p) => p[0])) : now - 60000;
  const t1 = all.length ? Math.max(...all.map((p) => p[0]), t0 + 1) : now;
  const max = niceMax(Math.max(0, ...all.map((p) => p[1])));
  const x = (t) => PAD_L + ((t - t0) / (t1 - t0)) * (W - PAD_L - PAD_R);
  const y = (v) => H - PAD_B - (v / max) * (H - PAD_B - PAD_T);
  for (const f of [0, 0.5, 1]) {
    const yy = y(max * f);
    svg.append(svgEl("line", { x1: PAD_L, x2: W - PAD_R, y1: yy, y2: yy, stroke: "#d0d7de" }));
    const label = svgEl("text", { x: PAD_L - 4, y: yy + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" });
    label.textContent = `${+(max * f).toPrecision(3)}${unit}`;
    svg.append(label);
  }
  const span = svgEl("text", { x: W - PAD_R, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" });
  span.textContent = all.length ? `last ${Math.round((t1 - t0) / 60000) || "<1"} min` : "no data yet";
  svg.append(span);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    const path = svgEl("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 });
    const title = svgEl("title", {});
    title.textContent = s.name;
    path.append(title);
    svg.append(path);
  });
}

// A legend for `names`, coloured as drawLines colours them.
export function legend(names) {
  const div = document.createElement("div");
  div.className = "legend";
  names.forEach((n, i) => {
    const s = document.createElement("span");
    s.style.setProperty("--c", COLORS[i % COLORS.length]);
    s.textContent = n;
    div.append(s);
  });
  return div;
}
