"use strict";
// Ratings kept in this browser's localStorage (file:// pages share it), never sent anywhere.
// One entry per image and input hash; the export is a labels TSV that flairqc-train reads (train/labels.py).
const FlairqcRatings = (() => {
  const PREFIX = "flairqc:rating:";
  const RATER = "flairqc:rater";
  const QUEUE = "flairqc:queue";
  const ARTEFACTS = ["motion", "noise", "contrast"];
  const COLUMNS = ["filename", "participant_id", "modality", "straight_reject", ...ARTEFACTS, "rater", "rated_at",
                   "comment", "bids_name", "input_sha256", "model_verdict", "model_straight_reject",
                   ...ARTEFACTS.map((a) => "model_" + a)];

  // Chromium (156, headless) now and then gives a file:// page that touches Web Storage while it is still loading
  // an empty, throw-away storage area for the whole document: saved ratings look gone and new ones are lost. In a
  // bare test page it hit 26 of 140 loads (none over http://), and 6 of 105 when the first access came right at
  // `load`; waiting for `load` + 300 ms gave 0 of 105, also with the CPU busy. So every page reads and writes
  // ratings only from whenReady.
  const SETTLE_MS = 300;
  function whenReady(callback) {
    const later = () => setTimeout(callback, SETTLE_MS);
    if (document.readyState === "complete") later(); else window.addEventListener("load", later, {once: true});
  }

  const key = (name, hash) => `${PREFIX}${name}:${hash}`;
  const read = (k) => { try { return JSON.parse(localStorage.getItem(k)); } catch (e) { return null; } };

  function all() {
    const out = [];
    for (let i = 0; i < localStorage.length; i += 1) {
      const k = localStorage.key(i);
      if (k.startsWith(PREFIX)) { const r = read(k); if (r) out.push(r); }
    }
    return out.sort((a, b) => String(a.bids_name).localeCompare(String(b.bids_name)));
  }

  // A rating is complete (a label) when straight reject is set and, for a kept image, all three grades.
  const complete = (r) => r && (r.straight_reject === 1 || (r.straight_reject === 0 && ARTEFACTS.every((a) => r[a] !== null && r[a] !== undefined)));

  function cell(value) {
    if (value === null || value === undefined || value === "") return "n/a";
    return String(value).replace(/[\t\r\n]+/g, " ");
  }

  function toTsv(ratings) {
    const lines = [COLUMNS.join("\t")];
    ratings.filter(complete).forEach((r) => {
      const row = {...r.model, ...r};
      if (r.straight_reject === 1) ARTEFACTS.forEach((a) => { row[a] = null; });
      lines.push(COLUMNS.map((c) => cell(row[c])).join("\t"));
    });
    return lines.join("\n") + "\n";
  }

  function download() {
    const rater = localStorage.getItem(RATER) || "rater";
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([toTsv(all())], {type: "text/tab-separated-values"}));
    link.download = `ratings_${rater.replace(/[^A-Za-z0-9_-]/g, "_")}_${stamp}.tsv`;
    document.body.append(link);
    link.click();
    link.remove();
  }

  return {
    whenReady, key, complete, all, toTsv, download, ARTEFACTS,
    get: (name, hash) => read(key(name, hash)),
    put: (rating) => localStorage.setItem(key(rating.bids_name, rating.input_sha256), JSON.stringify(rating)),
    remove: (name, hash) => localStorage.removeItem(key(name, hash)),
    rater: () => localStorage.getItem(RATER) || "",
    setRater: (id) => localStorage.setItem(RATER, id),
    queue: () => read(QUEUE),
    setQueue: (queue) => localStorage.setItem(QUEUE, JSON.stringify(queue)),
  };
})();
