// Shared by the browser checks: Debian's Chromium driven by playwright-core (no browser download).

/**
 * Launch headless Chromium at `executablePath`. Exits the process with status 2 and a message when
 * playwright-core is not installed (`npm ci` at the repository root).
 */
export async function launchChromium(executablePath) {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (error) {
    console.error(`playwright-core is not installed (${error.message}); run \`npm ci\` at the repository root`);
    process.exit(2);
  }
  // The machine has no route to the internet: these flags stop Chromium's background connections
  // (updates, sync, field trials), which would otherwise be refused many at a time. --no-sandbox
  // because CI runs as root.
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}
