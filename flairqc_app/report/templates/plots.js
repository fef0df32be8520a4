"use strict";
// Shared by both reports: draw every <script type="application/json" data-plot-for="ID"> figure into #ID.
const FLAIRQC_PLOT_CONFIG = {displaylogo: false, responsive: true};
document.querySelectorAll("script[data-plot-for]").forEach((source) => {
  const figure = JSON.parse(source.textContent);
  Plotly.newPlot(source.dataset.plotFor, figure.data, figure.layout, FLAIRQC_PLOT_CONFIG);
});
