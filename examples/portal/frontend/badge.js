export function releaseBadge(release) {
  const badge = document.createElement("strong");
  badge.className = "release badge";
  badge.title = `release ${release}`;
  badge.textContent = release;
  return badge;
}
