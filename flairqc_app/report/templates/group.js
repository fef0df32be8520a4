"use strict";
// Group report: a searchable, sortable, paginated table and the highlight of one image in the
// distribution plots, all drawn from the rows embedded once as JSON (#qc-rows).
// The URL hash "#q=TEXT" pre-fills the search, so a link can point at one image.
(() => {
  const payload = JSON.parse(document.getElementById("qc-rows").textContent);
  const col = Object.fromEntries(payload.columns.map((name, i) => [name, i]));
  const rows = payload.rows;
  const headers = Array.from(document.querySelectorAll("#qc-table th"));
  const labelOf = Object.fromEntries(headers.map((th) => [th.dataset.field, th.textContent.trim()]));
  const categoryRank = Object.keys(payload.categories);
  const searchFields = ["bids_name", "status", "reason", "manufacturer", "manufacturers_model_name"];
  const haystacks = rows.map((r) => searchFields.map((f) => r[col[f]] ?? "").join(" ").toLowerCase());
  const collator = new Intl.Collator(undefined, {numeric: true});
  const HIGHLIGHT = "#e6007e";
  const state = {sortField: "bids_name", sortDir: 1, page: 0, pageSize: 50, shown: rows.slice(), selected: null};
  const search = document.getElementById("search");
  const tbody = document.querySelector("#qc-table tbody");

  function shown(field, value) {
    if (value === null) return "n/a";
    if (field === "category") return payload.categories[value];
    if (typeof value === "number" && (field.startsWith("p_") || field === "registration_ncc")) return value.toFixed(3);
    return String(value);
  }

  function sortKey(row, field) {
    const value = row[col[field]];
    return field === "category" ? categoryRank.indexOf(value) : value;
  }

  function compare(a, b) {
    const x = sortKey(a, state.sortField);
    const y = sortKey(b, state.sortField);
    if (x === y) return 0;
    if (x === null) return 1; // n/a last in both directions
    if (y === null) return -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : collator.compare(String(x), String(y));
    return state.sortDir * order;
  }

  function cellFor(row, field) {
    const td = document.createElement("td");
    const value = row[col[field]];
    if (field === "bids_name" && value !== null) {
      const link = document.createElement("a");
      link.href = encodeURIComponent(value) + ".html"; // the per-image reports sit next to this page
      link.textContent = value;
      td.append(link);
    } else if (field === "category") {
      const badge = document.createElement("span");
      badge.className = "cat";
      badge.style.background = `var(--c-${value})`;
      badge.textContent = shown(field, value);
      td.append(badge);
    } else {
      td.textContent = shown(field, value);
      if (typeof value === "number") td.className = "num";
    }
    return td;
  }

  function rowElement(row) {
    const tr = document.createElement("tr");
    tr.dataset.name = row[col.bids_name] ?? "";
    if (row === state.selected) tr.className = "selected";
    tr.append(...headers.map((th) => cellFor(row, th.dataset.field)));
    return tr;
  }

  function renderTable() {
    const start = state.page * state.pageSize;
    const page = state.shown.slice(start, start + state.pageSize);
    const total = state.shown.length;
    tbody.replaceChildren(...page.map(rowElement));
    const filtered = total < rows.length ? ` (filtered from ${rows.length})` : "";
    document.getElementById("pager").textContent = total ? `${start + 1}–${start + page.length} of ${total}${filtered}` : "no match";
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = start + state.pageSize >= total;
    headers.forEach((th) => {
      const sorted = th.dataset.field === state.sortField;
      th.setAttribute("aria-sort", sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
    });
  }

  function distribution(id, items, title) {
    const traces = items.map(({field, label}) => ({
      type: "violin", name: label, y: rows.map((r) => r[col[field]]).filter((v) => v !== null),
      points: false, box: {visible: true}, spanmode: "hard", line: {color: "#5b7fa6"},
      showlegend: false, hoverinfo: "y",
    }));
    traces.push({
      type: "scatter", mode: "markers", name: "selected image", x: [], y: [], showlegend: false,
      marker: {color: HIGHLIGHT, size: 14, symbol: "diamond", line: {width: 1, color: "#000"}},
    });
    // the title below the plotly toolbar, as in group.py
    const layout = {title: {text: title, x: 0.02, xanchor: "left", yref: "container", y: 1, yanchor: "top", pad: {t: 34}},
                    height: 380, margin: {l: 50, r: 10, t: 70, b: 60}};
    Plotly.newPlot(id, traces, layout, FLAIRQC_PLOT_CONFIG);
    return {id, items, index: traces.length - 1};
  }

  const distributions = [
    distribution("dist-probabilities", payload.tasks, "Model probabilities (processed images)"),
    distribution("dist-registration", [{field: "registration_ncc", label: "registration NCC"}], "Registration similarity to the template"),
  ];

  function highlight(plot) {
    const x = [];
    const y = [];
    plot.items.forEach(({field, label}) => {
      const value = state.selected ? state.selected[col[field]] : null;
      if (value !== null) {
        x.push(label);
        y.push(value);
      }
    });
    Plotly.restyle(plot.id, {x: [x], y: [y]}, [plot.index]);
  }

  function showSelection() {
    const box = document.getElementById("selection");
    const row = state.selected;
    box.hidden = row === null;
    if (row === null) return;
    const heading = document.createElement("strong");
    heading.textContent = "Selected: ";
    const link = document.createElement("a");
    link.href = encodeURIComponent(row[col.bids_name]) + ".html";
    link.textContent = row[col.bids_name];
    heading.append(link);
    const list = document.createElement("dl");
    payload.columns.forEach((field, i) => {
      const term = document.createElement("dt");
      term.textContent = labelOf[field] ?? field;
      const value = document.createElement("dd");
      value.textContent = shown(field, row[i]);
      list.append(term, value);
    });
    box.replaceChildren(heading, list);
  }

  function select(row) {
    state.selected = row;
    distributions.forEach(highlight);
    showSelection();
    tbody.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", row !== null && tr.dataset.name === row[col.bids_name]));
  }

  function applyQuery(raw) {
    const query = raw.trim();
    const needle = query.toLowerCase();
    state.shown = needle ? rows.filter((_, i) => haystacks[i].includes(needle)) : rows.slice();
    state.shown.sort(compare);
    state.page = 0;
    renderTable();
    const exact = rows.find((r) => r[col.bids_name] === query);
    const only = needle && state.shown.length === 1 ? state.shown[0] : null;
    if (exact || only) select(exact || only);
    history.replaceState(null, "", query ? "#q=" + encodeURIComponent(query) : location.pathname + location.search);
  }

  let pending = 0;
  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(() => applyQuery(search.value), 150);
  });
  document.getElementById("page-size").addEventListener("change", (event) => {
    state.pageSize = Number(event.target.value);
    state.page = 0;
    renderTable();
  });
  document.getElementById("prev").addEventListener("click", () => { state.page -= 1; renderTable(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; renderTable(); });
  headers.forEach((th) => th.addEventListener("click", () => {
    state.sortDir = th.dataset.field === state.sortField ? -state.sortDir : 1;
    state.sortField = th.dataset.field;
    state.shown.sort(compare);
    state.page = 0;
    renderTable();
  }));
  tbody.addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (tr && !event.target.closest("a")) select(state.shown[state.page * state.pageSize + tr.sectionRowIndex]);
  });

  const initial = new URLSearchParams(location.hash.slice(1)).get("q") ?? "";
  search.value = initial;
  applyQuery(initial);
})();
