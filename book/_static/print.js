/* Printing the book (its PDF, vgg_lib/teaching/book_pdf.py, or a reader's own "Print"): every
   fold opens first (solutions, the Colab set-up cell, hidden code and outputs), so that paper shows
   what a click would, and closes again afterwards. A <details> fold is unwrapped rather than
   opened: Chromium cannot split an open <details> across pages. Added by book/_ext/site_offline.py. */
(() => {
  let undo = [];
  window.expandForPrint = () => {
    document.querySelectorAll("details").forEach((details) => {
      const unfolded = document.createElement("div");
      unfolded.className = `${details.className} unfolded-for-print`;
      Array.from(details.childNodes).forEach((child) => {
        if (child.nodeName !== "SUMMARY") unfolded.appendChild(child);
      });
      details.replaceWith(unfolded);
      undo.push(() => {
        Array.from(unfolded.childNodes).forEach((child) => details.appendChild(child));
        unfolded.replaceWith(details);
      });
    });
    document.querySelectorAll(".toggle-hidden").forEach((element) => {  // sphinx-togglebutton's dropdowns
      element.classList.remove("toggle-hidden");
      undo.push(() => element.classList.add("toggle-hidden"));
    });
    return undo.length;
  };
  window.addEventListener("beforeprint", window.expandForPrint);
  window.addEventListener("afterprint", () => {
    undo.reverse().forEach((close) => close());
    undo = [];
  });
})();
