// hf_mmbuilder inspection report: draws the sections from window.HF_MMBUILDER_REPORT (data.js).
// Hand-written, no libraries: every element is built with DOM calls and text goes in as text
// (never as HTML), so a row's content cannot inject markup.
"use strict";
(function () {
  const REPORT = window.HF_MMBUILDER_REPORT;
  const PAGE_SIZE = 20;
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fdb", "#e8833a", "#2aa876", "#c94f7c", "#7b61c9", "#b8a22b", "#3aa6c9", "#8c564b",
                   "#d62728", "#17becf", "#9467bd", "#bcbd22", "#1f77b4", "#ff7f0e", "#2ca02c", "#e377c2"];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function svgEl(tag, attrs, children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  const number = (value) => Number(value).toLocaleString("en-US");
  const short = (value) => (Math.abs(value) >= 1000 ? number(Math.round(value)) : String(Math.round(value * 100) / 100));

  // ---- plots -----------------------------------------------------------------------------------
  function histogramPlot(data) {
    const width = 360, height = 150, left = 36, bottom = 22;
    const max = Math.max(1, ...data.counts);
    const step = (width - left) / data.counts.length;
    const bars = data.counts.map((count, index) => {
      const h = (count / max) * (height - bottom - 6);
      const range = data.integer ? short(data.edges[index]) : `${short(data.edges[index])} to ${short(data.edges[index + 1])}`;
      return svgEl("rect", { class: "bar", x: left + index * step + 0.5, y: height - bottom - h, width: Math.max(1, step - 1), height: h },
        [svgEl("title", { text: `${range}: ${number(count)} rows` })]);
    });
    const labels = [
      svgEl("text", { x: left, y: height - 6, text: short(data.edges[0]) }),
      svgEl("text", { x: width, y: height - 6, "text-anchor": "end",
        text: short(data.edges[data.edges.length - 1] - (data.integer ? 1 : 0)) + (data.log ? " (log bins)" : "") }),
      svgEl("text", { x: left - 4, y: 12, "text-anchor": "end", text: short(max) }),
      svgEl("text", { x: left - 4, y: height - bottom, "text-anchor": "end", text: "0" }),
    ];
    return svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" }, [...bars, ...labels]);
  }

  function categoryPlot(data) {
    const rowHeight = 16, labelWidth = 200, width = 420;
    const max = Math.max(1, ...data.map((pair) => pair[1]));
    const height = rowHeight * data.length + 4;
    const items = [];
    data.forEach(([label, count], index) => {
      const y = index * rowHeight + 2;
      const w = (count / max) * (width - labelWidth - 60);
      items.push(svgEl("text", { x: labelWidth - 4, y: y + 11, "text-anchor": "end", text: String(label).length > 34 ? String(label).slice(0, 33) + "…" : String(label) },
        [svgEl("title", { text: String(label) })]));
      items.push(svgEl("rect", { class: "bar", x: labelWidth, y, width: Math.max(1, w), height: rowHeight - 3 },
        [svgEl("title", { text: `${label}: ${number(count)}` })]));
      items.push(svgEl("text", { x: labelWidth + w + 4, y: y + 11, text: number(count) }));
    });
    // Drawn at its own size: a plot of two categories must not scale up to the figure's width.
    return svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "categories", role: "img" }, items);
  }

  function table(headers, rows, numeric) {
    return el("table", {}, [
      el("thead", {}, [el("tr", {}, headers.map((name, i) => el("th", { className: numeric && numeric[i] ? "num" : null, text: name })))]),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((cell, i) =>
        cell instanceof Node ? el("td", {}, [cell]) : el("td", { className: numeric && numeric[i] ? "num" : null, text: cell }))))),
    ]);
  }

  // ---- rows ------------------------------------------------------------------------------------
  function mediaItem(row, kind, index) {
    const entry = (row.media[kind] || [])[index];
    if (!entry) return el("span", { className: "missing", text: `${kind} #${index}: token without a path in the row's ${kind}s list` });
    if (!entry.src) return el("span", { className: "missing", title: entry.path, text: `${kind} ${entry.path}: ${entry.note}` });
    const caption = el("div", { className: "caption", text: entry.path + (entry.note ? ` (${entry.note})` : "") });
    let player;
    if (kind === "image") player = el("img", { src: entry.src, alt: entry.path, title: entry.path, decoding: "async" });
    else player = el(kind, { src: entry.src, controls: true, preload: "metadata", title: entry.path });
    return el("span", { className: `media ${kind}` }, [player, caption]);
  }

  function pieces(row, list) {
    const node = el("div", { className: "text" });
    for (const piece of list) {
      if (piece[0] === "t") node.append(document.createTextNode(piece[1]));
      else if (piece[0] === "eoc") node.append(el("span", { className: "eoc", text: " ⏎eoc" }));
      else node.append(mediaItem(row, piece[0], piece[1]));
    }
    return node;
  }

  function rowBody(row) {
    const body = el("div", { className: "row-body" });
    if (row.turns) {
      for (const [role, list] of row.turns)
        body.append(el("div", { className: "turn" }, [el("div", { className: "role", text: role === null ? "(no role)" : role }), pieces(row, list)]));
    } else {
      for (const chunk of row.chunks) body.append(el("div", { className: "chunk" }, [pieces(row, chunk)]));
    }
    return body;
  }

  function rowHead(row) {
    const parts = [`row ${number(row.row)}`, row.split];
    if (row.id !== undefined) parts.push(`id ${row.id}`);
    if (row.source_format) parts.push(row.source_format);
    if (row.source_file) parts.push(row.source_file);
    return el("div", { className: "row-head", text: parts.join(" · ") });
  }

  function plainText(row) {
    const list = row.turns ? row.turns.flatMap(([role, items]) => [["t", role ? `[[${role}]]: ` : ""], ...items, ["t", "\n"]]) : row.chunks.flat();
    return list.filter((piece) => piece[0] === "t").map((piece) => piece[1]).join("");
  }

  function searchText(row) {
    const paths = Object.values(row.media).flat().map((entry) => entry.path || "");
    return [plainText(row), row.id || "", row.source_file || "", ...paths].join("\n").toLowerCase();
  }

  function drawRows(section) {
    const rows = REPORT.rows.map((row) => ({ row, haystack: searchText(row) }));
    let matches = rows;
    let page = 0;
    const search = el("input", { id: "row-search", type: "search", placeholder: "Search text, ids, media paths..." });
    const prev = el("button", { id: "prev-page", text: "‹ Previous" });
    const next = el("button", { id: "next-page", text: "Next ›" });
    const info = el("span", { id: "page-info", className: "note" });
    const list = el("div", { id: "row-list" });
    section.append(el("h2", { text: `Rows (a sample of ${number(REPORT.rows.length)} of ${number(REPORT.overview.rows)})` }),
      el("div", { className: "toolbar" }, [search, prev, next, info]), list);

    function render() {
      const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
      page = Math.min(page, pages - 1);
      list.replaceChildren(...matches.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE)
        .map(({ row }) => el("article", { className: "row", "data-row": row.row }, [rowHead(row), rowBody(row)])));
      info.textContent = `page ${page + 1} of ${pages} · ${number(matches.length)} matching rows`;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    search.addEventListener("input", () => {
      const query = search.value.trim().toLowerCase();
      matches = query ? rows.filter((item) => item.haystack.includes(query)) : rows;
      page = 0;
      render();
    });
    prev.addEventListener("click", () => { page -= 1; render(); });
    next.addEventListener("click", () => { page += 1; render(); });
    render();
  }

  // ---- sections --------------------------------------------------------------------------------
  function drawOverview(section) {
    const data = REPORT.overview;
    section.append(el("div", { className: "cards" }, [
      el("div", { className: "card" }, [el("b", { text: number(data.rows) }), document.createTextNode("rows")]),
      el("div", { className: "card" }, [el("b", { text: number(data.alignment.count) }), document.createTextNode("misaligned rows")]),
      el("div", { className: "card" }, [el("b", { text: number(data.sources.length) }), document.createTextNode("source / split groups")]),
    ]));
    section.append(el("h2", { text: "Rows per source and split" }),
      table(["format", "file", "split", "rows"], data.sources.map((s) => [s.format || "-", s.file || "-", s.split, number(s.rows)]), [0, 0, 0, 1]));
    if (data.alignment.count)
      section.append(el("p", { className: "note", text: `Token / media mismatches in ${number(data.alignment.count)} rows, first: ${data.alignment.rows.join(", ")}` }));
    section.append(el("h2", { text: "Distributions (all rows)" }));
    section.append(el("div", { className: "plots" }, data.plots.map((plot) => el("figure", {}, [
      el("figcaption", { text: plot.title }), plot.kind === "histogram" ? histogramPlot(plot.data) : categoryPlot(plot.data)]))));
  }

  function diffText(diff) {
    const node = el("div", { className: "text" });
    for (const [kind, text] of diff)
      node.append(kind === "=" ? document.createTextNode(text) : el(kind === "+" ? "ins" : "del", { text }));
    return node;
  }

  function drawDuplicates(section) {
    const data = REPORT.duplicates;
    section.append(el("h2", { text: "Duplicate clusters" }));
    if (!data) {
      section.append(el("p", { className: "note", text: "No clusters given: pass clusters= (dedup(..., return_clusters=True)'s cluster_id, or a dedup method)." }));
      return;
    }
    section.append(el("p", { className: "note", text: `${number(data.clusters)} clusters of two or more rows; ${number(data.duplicate_rows)} rows removed by a dedup; largest ${number(data.largest)} rows. Largest first${data.shown.length < data.clusters ? `, the first ${data.shown.length} shown` : ""}.` }));
    for (const cluster of data.shown) {
      const members = cluster.members.map((member) => {
        const media = Object.entries(member.media).flatMap(([kind, entries]) => entries.map((_, index) => mediaItem(member, kind, index)));
        return el("div", { className: member.kept ? "member kept" : "member", "data-row": member.row }, [
          el("div", {}, [el("span", { className: member.kept ? "badge kept" : "badge dup", text: member.kept ? "kept" : "duplicate" }),
                         el("span", { className: "note", text: `row ${number(member.row)}` })]),
          ...media,
          diffText(member.diff),
        ]);
      });
      section.append(el("div", { className: "cluster", "data-cluster": cluster.id }, [
        el("div", { className: "row-head", text: `cluster ${cluster.id} · ${cluster.size} rows${cluster.size > cluster.members.length ? ` (${cluster.members.length} shown)` : ""}` }),
        el("div", { className: "members" }, members)]));
    }
  }

  function drawSelection(section) {
    const data = REPORT.selection;
    section.append(el("h2", { text: "Selection" }));
    if (!data) {
      section.append(el("p", { className: "note", text: "No selection given: pass selection= (row numbers, a mask or a boolean column)." }));
      return;
    }
    section.append(el("p", { className: "note", text: `${number(data.selected)} of ${number(data.rows)} rows selected.${data.note ? " " + data.note : ""}` }));
    if (data.points.length) {
      const width = 640, height = 420, pad = 16;
      const xs = data.points.map((p) => p[0]), ys = data.points.map((p) => p[1]);
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
      const sy = (y) => height - pad - ((y - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
      const ordered = [...data.points].sort((a, b) => Number(a[3]) - Number(b[3]));
      const dots = ordered.map(([x, y, row, selected, cluster]) => svgEl("circle", {
        cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: selected ? 4 : 2, class: selected ? "selected" : "other",
        fill: PALETTE[cluster % PALETTE.length], "fill-opacity": selected ? 1 : 0.35,
      }, [svgEl("title", { text: `row ${row}, cluster ${cluster}${selected ? ", selected" : ""}` })]));
      section.append(el("figure", {}, [el("figcaption", { text: "PCA of the embeddings: selected rows outlined, colour = k-means cluster" }),
        svgEl("svg", { class: "scatter", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, dots)]));
    }
    if (data.quotas.length) {
      section.append(el("h2", { text: "Per-cluster quotas" }), table(["cluster", "rows", "selected", "share of cluster", "share of selection"],
        data.quotas.map((q) => [String(q.cluster), number(q.rows), number(q.selected), `${(100 * q.selected / q.rows).toFixed(1)}%`,
          `${(100 * q.selected / Math.max(1, data.selected)).toFixed(1)}%`]), [0, 1, 1, 1, 1]));
    }
  }

  function drawRejects(section) {
    const data = REPORT.rejects;
    section.append(el("h2", { text: "Rejects" }));
    if (!data) {
      section.append(el("p", { className: "note", text: "No rejects given: pass rejects= (a loader's rejects file, or the dropped rows of apply_filters)." }));
      return;
    }
    const raw = (text) => el("details", {}, [el("summary", { text: "raw record" }), el("pre", { text })]);
    section.append(el("h2", { text: `Loader rejects (${number(data.loader.count)})` }));
    if (data.loader.reasons.length) section.append(el("figure", {}, [el("figcaption", { text: "Reasons" }), categoryPlot(data.loader.reasons.slice(0, 20))]));
    section.append(table(["file", "record", "line", "reason", "raw"],
      data.loader.shown.map((r) => [r.file || "-", r.record === null || r.record === undefined ? "-" : String(r.record),
        r.line === null || r.line === undefined ? "-" : String(r.line), r.reason, raw(r.raw)]), [0, 1, 1, 0, 0]));
    section.append(el("h2", { text: `Filter failures (${number(data.filtered.count)})` }));
    if (data.filtered.reasons.length) section.append(el("figure", {}, [el("figcaption", { text: "Rows per check" }), categoryPlot(data.filtered.reasons.slice(0, 20))]));
    section.append(table(["dropped row", "id", "reason", "raw"],
      data.filtered.shown.map((r) => [String(r.row), r.id === null || r.id === undefined ? "-" : String(r.id), r.reason, raw(r.raw)]), [1, 0, 0, 0]));
  }

  // ---- navigation ------------------------------------------------------------------------------
  const SECTIONS = { overview: drawOverview, rows: drawRows, duplicates: drawDuplicates, selection: drawSelection, rejects: drawRejects };
  const drawn = new Set();

  function show() {
    const name = SECTIONS[location.hash.slice(1)] ? location.hash.slice(1) : "overview";
    for (const section of document.querySelectorAll(".section")) section.classList.toggle("active", section.id === name);
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.section === name);
    if (!drawn.has(name)) {
      drawn.add(name);
      SECTIONS[name](document.getElementById(name));
    }
  }

  document.getElementById("title").textContent = REPORT.title;
  document.title = `${REPORT.title} · hf_mmbuilder inspection report`;
  window.addEventListener("hashchange", show);
  show();
})();
