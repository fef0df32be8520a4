// Group report: verdict cards and per-column filters, search, sort, a column chooser, paging, the walk through
// the filtered images (selection prev/next, rating mode) and the highlight of one image in the distributions,
// all drawn from the rows embedded once as JSON (#qc-rows).
// The URL hash "#q=TEXT" pre-fills the search, so a link can point at one image.
(() => {
  const payload = JSON.parse(document.getElementById("qc-rows").textContent);
  const col = Object.fromEntries(payload.columns.map((name, i) => [name, i]));
  const rows = payload.rows;
  const headers = Array.from(document.querySelectorAll("#qc-table thead tr:first-child th"));
  const filterCells = Array.from(document.querySelectorAll("#qc-table tr.filters td"));
  const labelOf = Object.fromEntries(headers.map((th) => [th.dataset.field, th.textContent.trim()]));
  const categoryRank = Object.keys(payload.categories);
  const collator = new Intl.Collator(undefined, {numeric: true});
  const HIGHLIGHT = "#e6007e";
  const state = {sortField: "bids_name", sortDir: 1, page: 0, pageSize: 50, shown: rows.slice(), selected: null,
                 categories: new Set(), filters: {}, hidden: new Set(payload.hidden), rated: new Set(),
                 ratingReady: false};
  const search = document.getElementById("search");
  const tbody = document.querySelector("#qc-table tbody");
  const nameOf = (row) => row[col.bids_name];
  const hrefOf = (row) => encodeURIComponent(nameOf(row)) + ".html"; // the per-image reports sit next to this page

  // What search matches: name, status, reason, verdict ("tier 3", "straight reject"), scanner fields.
  const haystacks = rows.map((r) => {
    const category = r[col.category];
    const words = ["bids_name", "status", "reason", "manufacturer", "manufacturers_model_name"].map((f) => r[col[f]] ?? "");
    const tesla = r[col.magnetic_field_strength];
    words.push(payload.categories[category], category, tesla === null ? "" : `${tesla} ${tesla}T`);
    if (r[col.previous] !== null) words.push("changed", "was " + payload.categories[r[col.previous]]);
    return words.join(" ").toLowerCase();
  });

  function shown(field, value) {
    if (value === null || value === undefined) return "n/a";
    if (field === "category" || field === "previous") return payload.categories[value];
    if (typeof value === "number" && (field.startsWith("p_") || field === "registration_ncc")) return value.toFixed(3);
    return String(value);
  }

  function sortKey(row, field) {
    if (field === "rated") return state.rated.has(nameOf(row)) ? 1 : 0;
    const value = row[col[field]];
    return field === "category" ? categoryRank.indexOf(value) : value;
  }

  function compare(a, b) {
    const x = sortKey(a, state.sortField);
    const y = sortKey(b, state.sortField);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1; // n/a last in both directions
    if (y === null || y === undefined) return -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : collator.compare(String(x), String(y));
    return state.sortDir * order;
  }

  // A numeric filter: ">0.5", "<=0.2", "=1", "0.3-0.6", or "n/a"; anything else matches nothing.
  function numericTest(text) {
    const t = text.trim().replace(/\s+/g, "");
    if (t === "") return null;
    if (t.toLowerCase() === "n/a") return (v) => v === null;
    const range = t.match(/^(-?[\d.]+)-(-?[\d.]+)$/);
    if (range) return (v) => v !== null && v >= Number(range[1]) && v <= Number(range[2]);
    const m = t.match(/^(<=|>=|<|>|=)?(-?[\d.]+)$/);
    if (!m) return () => false;
    const x = Number(m[2]);
    const ops = {"<": (v) => v < x, "<=": (v) => v <= x, ">": (v) => v > x, ">=": (v) => v >= x, "=": (v) => v === x};
    const op = ops[m[1] || ">="];
    return (v) => v !== null && op(v);
  }

  function gradeTest(text) {
    if (text === "") return null;
    return text === "n/a" ? (v) => v === null : (v) => v === Number(text);
  }

  function cellFor(row, field) {
    const td = document.createElement("td");
    if (field === "rated") {
      td.textContent = state.rated.has(nameOf(row)) ? "\u2713" : "";
      td.className = "rated";
      return td;
    }
    const value = row[col[field]];
    if (field === "bids_name" && value !== null) {
      const link = document.createElement("a");
      link.href = hrefOf(row);
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

  const visibleFields = () => headers.map((th) => th.dataset.field).filter((f) => !state.hidden.has(f));

  function rowElement(row) {
    const tr = document.createElement("tr");
    tr.dataset.name = nameOf(row) ?? "";
    if (row === state.selected) tr.className = "selected";
    tr.append(...visibleFields().map((field) => cellFor(row, field)));
    return tr;
  }

  function renderTable() {
    const start = state.page * state.pageSize;
    const page = state.shown.slice(start, start + state.pageSize);
    const total = state.shown.length;
    headers.forEach((th, i) => {
      const hidden = state.hidden.has(th.dataset.field);
      th.hidden = hidden;
      filterCells[i].hidden = hidden;
      const sorted = th.dataset.field === state.sortField;
      th.setAttribute("aria-sort", sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
    });
    tbody.replaceChildren(...page.map(rowElement));
    const filtered = total < rows.length ? ` (filtered from ${rows.length})` : "";
    document.getElementById("pager").textContent = total ? `${start + 1}–${start + page.length} of ${total}${filtered}` : "no match";
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = start + state.pageSize >= total;
    showRateButton();
  }

  function showRateButton() {
    const rate = document.getElementById("rate");
    rate.textContent = `Rating mode (${state.shown.length})`;
    rate.disabled = state.shown.length === 0 || !state.ratingReady; // the queue is kept in storage
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

  const hasValues = (field) => rows.some((r) => r[col[field]] !== null);
  const distributions = [];
  function drawDistributions() {
    if (payload.tasks.some((t) => hasValues(t.field))) {
      distributions.push(distribution("dist-probabilities", payload.tasks, "Model probabilities (processed images)"));
    } else document.getElementById("dist-probabilities").hidden = true;
    if (hasValues("registration_ncc")) {
      distributions.push(distribution("dist-registration", [{field: "registration_ncc", label: "registration NCC"}],
                                      "Registration similarity to the template"));
    } else document.getElementById("dist-registration").hidden = true;
    distributions.forEach(highlight);
  }

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

  function button(text, id, onClick, disabled) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = id;
    b.textContent = text;
    b.disabled = disabled;
    b.addEventListener("click", onClick);
    return b;
  }

  function showSelection() {
    const box = document.getElementById("selection");
    const row = state.selected;
    box.hidden = row === null;
    if (row === null) return;
    const at = state.shown.indexOf(row);
    const heading = document.createElement("strong");
    heading.textContent = "Selected: ";
    const link = document.createElement("a");
    link.href = hrefOf(row);
    link.textContent = nameOf(row);
    heading.append(link);
    const where = document.createElement("span");
    where.textContent = at >= 0 ? ` ${at + 1} of ${state.shown.length} shown ` : " (not in the filtered set) ";
    const list = document.createElement("dl");
    payload.columns.forEach((field, i) => {
      const term = document.createElement("dt");
      term.textContent = labelOf[field] ?? field;
      const value = document.createElement("dd");
      value.textContent = shown(field, row[i]);
      list.append(term, value);
    });
    box.replaceChildren(heading, where, button("\u2190 previous [k]", "select-prev", () => step(-1), at <= 0),
                        button("next [j] \u2192", "select-next", () => step(1), at < 0 || at >= state.shown.length - 1), list);
  }

  function select(row) {
    state.selected = row;
    distributions.forEach(highlight);
    showSelection();
    tbody.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", row !== null && tr.dataset.name === nameOf(row)));
  }

  // Walk the filtered set: the page follows the selection.
  function step(delta) {
    const at = state.selected ? state.shown.indexOf(state.selected) : -1;
    const target = Math.min(Math.max(at + delta, 0), state.shown.length - 1);
    if (target < 0 || target === at) return;
    state.page = Math.floor(target / state.pageSize);
    renderTable();
    select(state.shown[target]);
  }

  function applyFilters() {
    const query = search.value.trim();
    const needle = query.toLowerCase();
    const tests = Object.entries(state.filters).filter(([, test]) => test !== null);
    state.shown = rows.filter((r, i) => (!needle || haystacks[i].includes(needle))
      && (state.categories.size === 0 || state.categories.has(r[col.category]))
      && tests.every(([field, test]) => (field === "rated" ? test(nameOf(r)) : test(r[col[field]]))));
    state.shown.sort(compare);
    state.page = 0;
    renderTable();
    const exact = rows.find((r) => nameOf(r) === query);
    const only = needle && state.shown.length === 1 ? state.shown[0] : null;
    if (exact || only) select(exact || only);
    else if (state.selected) showSelection();
    history.replaceState(null, "", query ? "#q=" + encodeURIComponent(query) : location.pathname + location.search);
  }

  // The rated ticks are updated in place: the rows on show stay the same elements.
  function refreshRated() {
    state.rated = new Set(FlairqcRatings.all().filter(FlairqcRatings.complete).map((r) => r.bids_name));
    document.getElementById("rating-count").textContent = `${state.rated.size} rated in this browser`;
    tbody.querySelectorAll("tr").forEach((tr) => {
      const tick = tr.querySelector("td.rated");
      if (tick) tick.textContent = state.rated.has(tr.dataset.name) ? "\u2713" : "";
    });
  }

  let pending = 0;
  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(applyFilters, 150);
  });
  document.querySelectorAll("#counts .count").forEach((card) => card.addEventListener("click", () => {
    const key = card.dataset.category;
    if (state.categories.has(key)) state.categories.delete(key); else state.categories.add(key);
    card.setAttribute("aria-pressed", String(state.categories.has(key)));
    applyFilters();
  }));
  document.querySelectorAll("[data-filter]").forEach((input) => input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
    const field = input.dataset.filter;
    if (field === "rated") state.filters.rated = input.value === "" ? null : (name) => state.rated.has(name) === (input.value === "yes");
    else state.filters[field] = input.tagName === "SELECT" ? gradeTest(input.value) : numericTest(input.value);
    clearTimeout(pending);
    pending = setTimeout(applyFilters, 150);
  }));
  document.querySelectorAll("#column-chooser input").forEach((box) => {
    box.checked = !state.hidden.has(box.value);
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(box.value); else state.hidden.add(box.value);
      renderTable();
    });
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
    if (state.selected) showSelection();
  }));
  tbody.addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (tr && !event.target.closest("a")) select(state.shown[state.page * state.pageSize + tr.sectionRowIndex]);
  });
  // Rating mode: the filtered images in the table's order become the queue that per-image pages walk.
  document.getElementById("rate").addEventListener("click", () => {
    const start = state.selected && state.shown.includes(state.selected) ? state.selected
      : state.shown.find((r) => !state.rated.has(nameOf(r))) || state.shown[0];
    FlairqcRatings.setQueue({names: state.shown.map(nameOf), hrefs: state.shown.map(hrefOf), query: search.value.trim(),
                             group: decodeURIComponent(location.pathname.split("/").pop())});
    location.href = hrefOf(start);
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "j") step(1);
    else if (event.key === "k") step(-1);
    else if (event.key === "Enter" && state.selected) location.href = hrefOf(state.selected);
    else return;
    event.preventDefault();
  });
  // Back from a rated page through the browser's page cache; a fresh load reads the ratings in whenReady below.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && state.ratingReady) refreshRated();
  });

  search.value = new URLSearchParams(location.hash.slice(1)).get("q") ?? "";
  applyFilters();
  document.body.dataset.tableShownMs = String(Math.round(performance.now())); // since navigation (bench_reports)
  // The rated ticks and rating mode once the storage has settled (rating.js, whenReady).
  FlairqcRatings.whenReady(() => {
    state.ratingReady = true;
    document.getElementById("export-ratings").addEventListener("click", FlairqcRatings.download);
    refreshRated();
    if (state.filters.rated || state.sortField === "rated") applyFilters(); // chosen before the ratings were read
    showRateButton();
    document.body.dataset.ratingReady = "1";
  });
  // The charts after the table is up (plotly takes most of the opening time with 10,000 rows).
  setTimeout(() => {
    flairqcDrawPlots();
    drawDistributions();
    document.body.dataset.plotsDrawnMs = String(Math.round(performance.now()));
  }, 0);
})();
