// The dashboard's charts (Chart.js, served from static/vendor). The figures come from
// the page itself (json_script), computed by review/metrics.py.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const days = data.series.map((row) => row.day.slice(5)); // MM-DD
  const col = (name) => data.series.map((row) => row[name]);
  const palette = {
    blue: "#2f6feb", teal: "#0f9d8a", red: "#c62828", orange: "#ef6c00",
    purple: "#7b1fa2", grey: "#9aa3af", green: "#2e7d32",
  };
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false; // figures, not a show; also keeps screenshots stable

  function chart(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) canvas.chart = new Chart(canvas, config);
  }

  chart("chart-requests", {
    type: "line",
    data: {
      labels: days,
      datasets: [
        { label: "requests", data: col("requests"), borderColor: palette.blue, backgroundColor: palette.blue, tension: 0.25 },
        { label: "active users", data: col("users"), borderColor: palette.teal, backgroundColor: palette.teal, tension: 0.25 },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  chart("chart-errors", {
    type: "bar",
    data: {
      labels: days,
      datasets: [
        { label: "errors", data: col("errors"), backgroundColor: palette.red, stack: "errors" },
        { label: "moderation flags", data: col("flags_moderation"), backgroundColor: palette.orange, stack: "flags" },
        { label: "user reports", data: col("flags_report"), backgroundColor: palette.purple, stack: "flags" },
        { label: "samples", data: col("flags_sample"), backgroundColor: palette.grey, stack: "flags" },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });

  chart("chart-latency", {
    type: "line",
    data: {
      labels: days,
      datasets: [
        { label: "p50", data: col("latency_p50_ms"), borderColor: palette.green, backgroundColor: palette.green, spanGaps: true },
        { label: "p90", data: col("latency_p90_ms"), borderColor: palette.orange, backgroundColor: palette.orange, spanGaps: true },
        { label: "p99", data: col("latency_p99_ms"), borderColor: palette.red, backgroundColor: palette.red, spanGaps: true },
      ],
    },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
  });

  chart("chart-feedback", {
    type: "bar",
    data: {
      labels: days,
      datasets: [
        { label: "thumbs up", data: col("feedback_up"), backgroundColor: palette.green },
        { label: "thumbs down", data: col("feedback_down"), backgroundColor: palette.red },
        { label: "reported", data: col("feedback_reported"), backgroundColor: palette.purple },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  const categories = data.top_moderation_categories;
  chart("chart-categories", {
    type: "bar",
    data: {
      labels: categories.map((c) => c.category),
      datasets: [{ label: "decisions", data: categories.map((c) => c.count), backgroundColor: palette.orange }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  document.getElementById("dashboard").dataset.chartsReady = "1";
})();
