// The example portal's front-end bundle, built by esbuild on the build host
// ([build.assets] in webdock.toml); only the bundle reaches the image.
import { releaseBadge } from "./badge.js";

document.addEventListener("DOMContentLoaded", () => {
  const el = document.querySelector(".release");
  if (el) {
    el.replaceWith(releaseBadge(el.textContent));
  }
});
