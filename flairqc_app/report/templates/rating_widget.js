// The rating widget of a per-image page, and the walk through the group report's rating queue.
(() => {
  const image = JSON.parse(document.getElementById("rating-image").textContent);
  const fields = ["straight_reject", ...FlairqcRatings.ARTEFACTS];
  const rater = document.getElementById("rater");
  const comment = document.getElementById("comment");
  const status = document.getElementById("rating-status");
  const widget = document.getElementById("rating");
  widget.inert = true; // until the ratings are read: a click or a typed word before then would be lost
  let active = 1; // index in fields of the artefact that the digit keys grade

  const radios = (field) => Array.from(document.querySelectorAll(`input[name="${field}"]`));
  const chosen = (field) => { const r = radios(field).find((x) => x.checked); return r ? Number(r.value) : null; };

  function showStatus() {
    const saved = FlairqcRatings.get(image.bids_name, image.input_sha256);
    status.textContent = !saved ? "not rated" : FlairqcRatings.complete(saved)
      ? `saved ${saved.rated_at.slice(0, 16).replace("T", " ")} by ${saved.rater || "?"}` : "incomplete";
    status.dataset.state = !saved ? "none" : FlairqcRatings.complete(saved) ? "complete" : "incomplete";
    document.getElementById("rating-count").textContent = `${FlairqcRatings.all().filter(FlairqcRatings.complete).length} image(s) rated in this browser`;
    document.querySelectorAll("#rating fieldset").forEach((f, i) => f.classList.toggle("active", i === active));
    const rejected = chosen("straight_reject") === 1;
    FlairqcRatings.ARTEFACTS.forEach((a) => radios(a).forEach((r) => { r.disabled = rejected; }));
  }

  function save() {
    const rating = {bids_name: image.bids_name, input_sha256: image.input_sha256, filename: image.filename,
                    participant_id: image.participant_id, modality: image.modality, model: image.model,
                    rater: rater.value.trim(), comment: comment.value.trim(), rated_at: new Date().toISOString()};
    fields.forEach((f) => { rating[f] = chosen(f); });
    FlairqcRatings.setRater(rating.rater);
    FlairqcRatings.put(rating);
    showStatus();
  }

  function load() {
    const saved = FlairqcRatings.get(image.bids_name, image.input_sha256);
    rater.value = (saved && saved.rater) || FlairqcRatings.rater();
    comment.value = (saved && saved.comment) || "";
    fields.forEach((f) => radios(f).forEach((r) => { r.checked = saved !== null && saved[f] !== null && Number(r.value) === saved[f]; }));
    showStatus();
  }

  function setGrade(field, value) {
    radios(field).forEach((r) => { r.checked = Number(r.value) === value; });
    save();
  }

  const outline = document.getElementById("show-outline");
  if (outline) outline.addEventListener("change", () => document.body.classList.toggle("no-outline", !outline.checked));

  // Everything that reads or writes ratings waits for the storage to settle (rating.js, whenReady).
  FlairqcRatings.whenReady(() => {
    widget.addEventListener("change", save);
    document.getElementById("export-ratings").addEventListener("click", FlairqcRatings.download);
    document.getElementById("clear-rating").addEventListener("click", () => {
      FlairqcRatings.remove(image.bids_name, image.input_sha256);
      load();
    });

    // The queue of the group report's rating mode: the filtered images, in the table's order.
    const queue = FlairqcRatings.queue();
    const position = queue ? queue.names.indexOf(image.bids_name) : -1;
    const go = (step) => {
      const target = position + step;
      if (position >= 0 && target >= 0 && target < queue.names.length) location.href = document.body.dataset.root + queue.hrefs[target];
    };
    if (position >= 0) {
      const nav = document.getElementById("queue");
      const link = (text, step, id) => {
        const a = document.createElement("a");
        a.id = id;
        a.textContent = text;
        const target = position + step;
        if (target >= 0 && target < queue.names.length) a.href = document.body.dataset.root + queue.hrefs[target];
        return a;
      };
      const back = document.createElement("a");
      back.href = document.body.dataset.root + queue.group + "#q=" + encodeURIComponent(queue.query || "");
      back.textContent = "back to the group report";
      const where = document.createElement("span");
      where.textContent = `rating mode: image ${position + 1} of ${queue.names.length}`;
      nav.replaceChildren(link("\u2190 previous [k]", -1, "queue-prev"), where, link("next [j] \u2192", 1, "queue-next"), back);
      nav.hidden = false;
    }

    document.addEventListener("keydown", (event) => {
      if (event.target.matches("input[type=text], textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
      const k = event.key;
      if (k === "x") setGrade("straight_reject", chosen("straight_reject") === 1 ? 0 : 1);
      else if (k === "m" || k === "n" || k === "c") { active = {m: 1, n: 2, c: 3}[k]; showStatus(); }
      else if (["0", "1", "2"].includes(k) && chosen("straight_reject") !== 1) {
        if (chosen("straight_reject") === null) radios("straight_reject")[0].checked = true; // grading means kept
        setGrade(fields[active], Number(k));
        active = active === 3 ? 1 : active + 1;
        showStatus();
      } else if (k === "j" || k === "ArrowRight") go(1);
      else if (k === "k" || k === "ArrowLeft") go(-1);
      else return;
      event.preventDefault();
    });
    load();
    widget.inert = false;
    document.body.dataset.ratingReady = "1";
  });
})();
