"use strict";
// Draw every <script type="application/json" data-plot-for="ID"> figure into #ID (the group report calls it
// once its table is up, so that the table shows first).
const FLAIRQC_PLOT_CONFIG = {displaylogo: false, responsive: true};
function flairqcDrawPlots() {
  document.querySelectorAll("script[data-plot-for]").forEach((source) => {
    const figure = JSON.parse(source.textContent);
    Plotly.newPlot(source.dataset.plotFor, figure.data, figure.layout, FLAIRQC_PLOT_CONFIG);
  });
}
