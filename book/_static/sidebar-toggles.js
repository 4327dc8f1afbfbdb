/* Make every sidebar toggle button work, on phones and desktops.
 *
 * pydata-sphinx-theme 0.17 (pinned by sphinx-book-theme 1.3) renders its own hidden
 * ".primary-toggle" / ".secondary-toggle" buttons in the top navbar, before the ones
 * sphinx-book-theme shows in the article header. Both themes attach their click handlers with
 * document.querySelector, i.e. to the first, hidden button only, so the visible hamburger and
 * "on this page" buttons do nothing (pydata/pydata-sphinx-theme issue 2451).
 *
 * Here a click on any later button is handed to the first one, whose handlers then do what the
 * themes intend: on wide screens the left sidebar is hidden or shown, on narrow screens the
 * sidebar opens as a drawer (a <dialog>; Escape or a click outside closes it). Delete this file
 * once the themes bind every toggle.
 */
document.addEventListener("DOMContentLoaded", () => {
  for (const selector of [".primary-toggle", ".secondary-toggle"]) {
    const [first, ...others] = document.querySelectorAll(selector);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        first.click();
      });
    }
  }
});
