// movierec admin: a button marked data-copy="ID" copies the text of the element with that id to the
// clipboard and says so beside it. Where the page may not write the clipboard (an address that is not
// secure, a refused permission), it selects the text instead, for the operator to copy by hand.
(function () {
  "use strict";

  function select(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const source = document.getElementById(button.dataset.copy);
    const state = button.parentElement.querySelector(".copy-state");
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
        state.textContent = "Copied to the clipboard.";
      } catch (error) {
        select(source);
        state.textContent = "This page may not write the clipboard: the key is selected, copy it with Ctrl+C (⌘C on a Mac).";
      }
    });
  });
})();
