// Review page: draws each answer's grounding boxes on the screenshot of its question
// (boxes are in pixels of the original image), and keeps the label list consistent with
// the verdict chosen. Text from the server is only ever set with textContent.
"use strict";

(function () {
  const boxes = JSON.parse(document.getElementById("review-boxes").textContent);

  function place(figure, img, list) {
    figure.querySelectorAll(".box").forEach((el) => el.remove());
    const sx = img.clientWidth / (img.naturalWidth || Number(img.dataset.width));
    const sy = img.clientHeight / (img.naturalHeight || Number(img.dataset.height));
    for (const box of list) {
      const el = document.createElement("span");
      el.className = "box";
      el.style.left = `${box.x1 * sx}px`;
      el.style.top = `${box.y1 * sy}px`;
      el.style.width = `${(box.x2 - box.x1) * sx}px`;
      el.style.height = `${(box.y2 - box.y1) * sy}px`;
      if (box.label) {
        el.title = box.label;
        const tag = document.createElement("span");
        tag.className = "box-label";
        tag.textContent = box.label;
        el.appendChild(tag);
      }
      figure.appendChild(el);
    }
    figure.dataset.boxesDrawn = String(list.length);
  }

  document.querySelectorAll("figure.review-shot").forEach((figure) => {
    const item = figure.closest("li[data-message-id]");
    const list = (item && boxes[item.dataset.messageId]) || [];
    const img = figure.querySelector("img");
    const draw = () => place(figure, img, list);
    if (img.complete && img.naturalWidth) draw();
    else img.addEventListener("load", draw, { once: true });
    window.addEventListener("resize", draw);
  });

  // A label implies the verdict's direction: offer only the labels that fit.
  const form = document.getElementById("resolve-form");
  if (form) {
    const select = form.querySelector("select[name=label]");
    form.querySelectorAll("input[name=verdict]").forEach((radio) => {
      radio.addEventListener("change", () => {
        const pass = radio.value === "pass";
        for (const option of select.options) {
          if (!option.value) continue;
          const fits = option.dataset.pass === "1" ? pass : !pass;
          option.hidden = !(fits || option.value === "other");
          option.disabled = option.hidden;
        }
        if (select.selectedOptions[0] && select.selectedOptions[0].disabled) select.value = "";
      });
    });
  }
})();
