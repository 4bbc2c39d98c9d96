import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe } from 'vitest';

// Headless Chromium driven through its command line (no Playwright/Puppeteer): --dump-dom prints
// the DOM after the page's scripts ran, --screenshot writes a PNG. Debian's package
// (`apt-get install -y chromium`) gives /usr/bin/chromium; CHROMIUM_PATH overrides. Without it
// the browser tests skip with a reason, except in CI (CI set), where they must run and fail.

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
export const CHROMIUM = [process.env.CHROMIUM_PATH, ...CANDIDATES].find(
  (p): p is string => p !== undefined && existsSync(p),
);

export const describeChromium = CHROMIUM || process.env.CI ? describe : describe.skip;
if (!CHROMIUM) {
  console.warn(
    process.env.CI
      ? `chromium not found (looked for ${[process.env.CHROMIUM_PATH ?? '$CHROMIUM_PATH', ...CANDIDATES].join(', ')}): CI must install it (apt-get install -y chromium)`
      : `chromium not found (looked for ${[process.env.CHROMIUM_PATH ?? '$CHROMIUM_PATH', ...CANDIDATES].join(', ')}): browser tests of report.html are skipped; apt-get install -y chromium to run them`,
  );
}

/** Quiet, offline, throwaway-profile flags; virtual time lets the page's scripts finish first. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--virtual-time-budget=5000',
];

async function runChromium(args: string[], timeoutMs: number): Promise<string> {
  if (!CHROMIUM)
    throw new Error(
      `chromium not found (looked for ${[process.env.CHROMIUM_PATH ?? '$CHROMIUM_PATH', ...CANDIDATES].join(', ')}); install it`,
    );
  const profile = await mkdtemp(join(tmpdir(), 'report-chromium-'));
  try {
    return await new Promise<string>((resolve, reject) => {
      // Its own process group, so a hung browser is ended with all its helper processes.
      const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, ...args], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const timer = setTimeout(() => {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
        reject(new Error(`chromium timed out after ${timeoutMs} ms: ${stderr.slice(-2000)}`));
      }, timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(stdout);
        else reject(new Error(`chromium exited with ${code}: ${stderr.slice(-2000)}`));
      });
    });
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The page's DOM (serialised) after its scripts ran. */
export function dumpDom(htmlFile: string, timeoutMs = 20_000): Promise<string> {
  return runChromium(['--dump-dom', pathToFileURL(htmlFile).href], timeoutMs);
}

/** A PNG of the top `width`×`height` CSS pixels of the page. */
export async function screenshot(
  htmlFile: string,
  png: string,
  width = 1400,
  height = 2000,
  timeoutMs = 20_000,
): Promise<void> {
  await runChromium(
    [
      `--screenshot=${png}`,
      `--window-size=${width},${height}`,
      '--hide-scrollbars',
      pathToFileURL(htmlFile).href,
    ],
    timeoutMs,
  );
}
