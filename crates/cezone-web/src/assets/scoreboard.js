// The scoreboard page: fetches /api/scoreboard, draws it, and fetches again on every `scores`
// event of /api/events. No framework, no build step. Times are shown in the district's zone
// (the data's `utc_offset_hours`), never the browser's, with the offset.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let data = null;
  let renders = 0;
  let loading = null;
  let again = false;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  const num = (s) => Number.parseFloat(s || "0");
  const two = (n) => String(n).padStart(2, "0");

  // A time (milliseconds since the epoch) as the server's formatter writes it, in the
  // district's zone: `2026-12-01 18:30:05 +08:00`.
  function zoned(ms) {
    const hours = data && Number.isInteger(data.utc_offset_hours) ? data.utc_offset_hours : 8;
    const d = new Date(ms + hours * 3600 * 1000);
    const sign = hours < 0 ? "-" : "+";
    return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ` +
      `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} ` +
      `${sign}${two(Math.abs(hours))}:00`;
  }

  // Red (0%) through amber to green (100%).
  function heat(ratio) {
    const r = Math.max(0, Math.min(1, ratio));
    return `hsl(${Math.round(r * 120)}, 62%, ${Math.round(88 - r * 18)}%)`;
  }

  function problem(text) {
    const p = $("problem");
    p.hidden = !text;
    p.textContent = text || "";
  }

  async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        const r = await fetch("/api/scoreboard", { cache: "no-store" });
        const body = await r.json();
        if (!r.ok) {
          problem("暂无分数 No scores yet: " + (body.error || r.status));
          return;
        }
        data = body;
        render();
      } catch (e) {
        problem("无法读取看板数据 Cannot read the scoreboard: " + e);
      } finally {
        loading = null;
        if (again) { again = false; load(); }
      }
    })();
    return loading;
  }

  function render() {
    const s = data.summary;
    problem(data.problems && data.problems.length ? data.problems.join("；") : "");
    $("title").textContent = `${s.org_unit_name} 社区教育实验区评估看板`;
    $("subtitle").textContent = `${s.period} 年度 · Community education experimental zone — scoreboard`;
    $("framework").textContent = `${s.framework} ${s.edition}`;
    const total = $("total");
    total.textContent = s.total.confirmed;
    total.dataset.value = s.total.confirmed;
    $("max-points").textContent = s.max_points;
    $("projected").textContent = s.total.projected;
    $("computed-at").textContent = data.updated_at_local || zoned(Date.now());
    $("total-bar").style.width = `${(100 * num(s.total.confirmed)) / Math.max(1, num(s.max_points))}%`;

    const areas = $("areas");
    areas.replaceChildren(...s.areas.map((a) => el("div", { class: "area", id: `area-${a.code}` },
      el("a", { class: "code", href: `/work/explain/${a.code}`, title: "得分说明 Explanation" }, a.code),
      el("div", { class: "name" }, a.title),
      el("div", {},
        el("span", { class: "score", "data-value": a.confirmed }, a.confirmed),
        el("span", { class: "of" }, ` / ${a.points}`)),
      el("div", { class: "sub" }, `预计 projected ${a.projected}`),
      (() => { const b = el("div", { class: "bar" }); const f = el("div", { class: "fill" });
        f.style.width = `${(100 * num(a.confirmed)) / Math.max(1e-9, num(a.points))}%`; b.append(f); return b; })())));

    const table = $("heatmap");
    const head = el("tr", {}, el("th", {}, "镇街 Town"), ...s.areas.map((a) => el("th", { title: a.title }, `${a.code} ${a.title}`)), el("th", {}, "合计 Total"));
    const rows = s.children.map((t) => el("tr", { id: `town-${t.org_unit}` },
      el("td", { class: "name" }, t.name),
      ...t.areas.map((c, i) => {
        const td = el("td", { "data-value": c.confirmed, title: `${t.name} · ${s.areas[i].title}: ${c.confirmed} / ${s.areas[i].points}` },
          el("a", { href: `/work/explain/${s.areas[i].code}?org_unit=${encodeURIComponent(t.org_unit)}` }, c.confirmed));
        td.style.background = heat(num(c.confirmed) / Math.max(1e-9, num(s.areas[i].points)));
        return td;
      }),
      (() => { const td = el("td", { "data-value": t.total.confirmed }, t.total.confirmed);
        td.style.background = heat(num(t.total.confirmed) / Math.max(1e-9, num(s.max_points))); return td; })()));
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));

    $("key-criteria").replaceChildren(...s.key_criteria.map((k) => el("li", { id: `key-${k.code}` },
      el("span", {}, el("span", { class: "star" }, "★ "),
        el("a", { href: `/work/explain/${k.code}`, title: "得分说明 Explanation" }, k.code), ` ${k.title}`),
      el("span", { class: "state " + (k.full_marks ? "full" : "short") },
        `${k.confirmed} / ${k.points}` + (k.full_marks ? " ✓" : ` (预计 ${k.projected})`)))));

    const comp = $("completeness");
    if (data.completeness) {
      comp.replaceChildren(...data.completeness.map((u) => {
        const m = el("div", { class: "meter", title: `${u.accepted} accepted, ${u.submitted} pending, ${u.missing} missing` });
        const acc = el("div", { class: "acc" }); acc.style.width = `${(100 * u.accepted) / Math.max(1, u.required)}%`;
        const sub = el("div", { class: "sub-m" }); sub.style.width = `${(100 * u.submitted) / Math.max(1, u.required)}%`;
        m.append(acc, sub);
        const pct = Math.round((100 * u.accepted) / Math.max(1, u.required));
        return el("div", { class: "row", id: `unit-${u.unit}` },
          el("span", {}, u.name), m,
          el("span", { class: "nums" }, `${pct}% · ${u.accepted}/${u.required}`,
            u.late ? el("span", { class: "late" }, ` · 逾期 ${u.late}`) : ""));
      }));
    } else {
      comp.replaceChildren(el("div", { class: "sub" }, "暂不可用 unavailable"));
    }
    drawChart();
    tick();
    renders += 1;
    document.body.dataset.renders = String(renders);
  }

  function drawChart() {
    const box = $("chart");
    const s = data.summary;
    const points = (data.snapshots || []).map((p) => ({
      t: Date.parse(p.frozen_at), v: num(p.confirmed), label: p.label || p.checkpoint || p.id,
      at: p.frozen_at_local || zoned(Date.parse(p.frozen_at)) }));
    const now = Date.now();
    points.push({ t: now, v: num(s.total.confirmed), label: "当前 now", now: true, at: zoned(now) });
    const W = 800, H = 220, L = 44, R = 16, T = 14, B = 30;
    const max = Math.max(1, num(s.max_points));
    const t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t));
    const x = (i, p) => (points.length < 2 || t1 === t0)
      ? L + ((W - L - R) * (points.length < 2 ? 1 : i / (points.length - 1)))
      : L + ((W - L - R) * (p.t - t0)) / (t1 - t0);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "score over snapshots" });
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      g.append(svg("line", { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), stroke: "#e4e7eb" }));
      const lab = svg("text", { x: L - 6, y: y(max * f) + 4, "text-anchor": "end", "font-size": 11, fill: "#616e7c" });
      lab.textContent = String(Math.round(max * f));
      g.append(lab);
    }
    const coords = points.map((p, i) => `${x(i, p).toFixed(1)},${y(p.v).toFixed(1)}`);
    g.append(svg("polyline", { points: coords.join(" "), fill: "none", stroke: "#2563eb", "stroke-width": 2.5 }));
    points.forEach((p, i) => {
      const c = svg("circle", { cx: x(i, p), cy: y(p.v), r: p.now ? 5 : 4, fill: p.now ? "#f0b429" : "#2563eb" });
      const tip = svg("title", {}); tip.textContent = `${p.label} (${p.at}): ${p.v}`; c.append(tip);
      g.append(c);
      const lab = svg("text", { x: x(i, p), y: H - 10, "text-anchor": "middle", "font-size": 11, fill: "#616e7c" });
      lab.textContent = p.label.length > 14 ? p.label.slice(0, 13) + "…" : p.label;
      g.append(lab);
    });
    box.replaceChildren(g);
    if (points.length === 1) box.append(el("div", { class: "empty" }, "尚无冻结快照 No snapshot frozen yet; the point is the current score."));
  }

  // Checkpoints fall due at the end of their day in the district's zone (the data's deadline).
  function tick() {
    if (!data) return;
    const cd = $("countdown");
    const cal = data.calendar;
    if (!cal) { cd.textContent = "—"; return; }
    if (!cal.next) {
      const last = cal.checkpoints[cal.checkpoints.length - 1];
      cd.className = "countdown past";
      cd.textContent = "所有节点均已过去 Every checkpoint is past";
      $("checkpoint-name").textContent = last ? `最后节点 last: ${last.due} ${last.name}` : "";
      return;
    }
    const due = Date.parse(cal.next.deadline);
    let s = Math.max(0, Math.floor((due - Date.now()) / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    cd.className = "countdown";
    cd.textContent = `${d} 天 ${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
    // The due day itself is still in time (the calendar's reading of the plan's "…前").
    $("checkpoint-name").textContent = `${cal.next.due} 截止（含当日，${data.zone}） ${cal.next.name}`;
  }

  function live() {
    const dot = $("live-dot"), text = $("live-text");
    const es = new EventSource("/api/events");
    es.addEventListener("scores", (e) => {
      const u = JSON.parse(e.data);
      dot.className = "dot flash";
      setTimeout(() => { dot.className = "dot on"; }, 600);
      text.textContent = `实时 live · ${u.computed_at_local || zoned(Date.parse(u.computed_at))}`;
      load();
    });
    es.addEventListener("waiting", (e) => {
      dot.className = "dot";
      text.textContent = "等待分数 waiting: " + e.data;
      load();
    });
    es.onerror = () => { dot.className = "dot"; text.textContent = "重新连接 reconnecting…"; };
  }

  window.cezoneLoadedAt = Date.now();
  setInterval(tick, 1000);
  load();
  live();
})();
