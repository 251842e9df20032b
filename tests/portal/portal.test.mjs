// The operator portal in a real browser (chromium driven by playwright-core), against a live
// MEAO that tests/tests/portal.rs starts (the demo's configuration, paris-1's MEP linked): sign in, onboard a broken package and see
// its problems, onboard the example and see it ONBOARDED, deploy it near a location with the
// placement preview and see the operation COMPLETED and the site's MEP acknowledge the
// instance's configuration, stop, start, terminate, delete; a request
// without the CSRF token and a cross-site form post are refused; sign-out ends the session; a
// viewer sees the pages and every change it tries at the endpoints is refused. Pages do not
// poll: a change another client makes through the REST API shows up without reload, and in
// the activity feed with who made it.
//
// An admin adds a simulated site and a Kubernetes one (its kubeconfig uploaded) through the
// form, edits one, takes a site out of service (placement passes it over) and back, and deletes
// them.
//
// Environment: PORTAL_URL, CHROMIUM, GOOD_PACKAGE, BROKEN_PACKAGE, SCREENSHOTS,
// OPERATOR_PASSWORD, VIEWER_PASSWORD, ADMIN_PASSWORD, API_TOKEN (another REST client's bearer
// token), KUBECONFIG_FILE. Exits non-zero on the first failure.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const PORTAL = env('PORTAL_URL');
const ORIGIN = new URL(PORTAL).origin;
const SHOTS = env('SCREENSHOTS');
const TIMEOUT = 30000;

const step = (what) => console.log(`portal test: ${what}`);
/** Saves a screenshot of the page, which must fit 1280 pixels without horizontal scrolling. */
async function shot(page, name) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 1280, `${name}: ${width} px wide, scrolls horizontally at 1280`);
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** fetch from inside the page: the session cookie goes along, as with the portal's own calls. */
const pageFetch = (page, method, url, { csrf, body } = {}) => page.evaluate(async ([m, u, c, b]) => {
  const headers = { 'content-type': 'application/json' };
  if (c) headers['x-csrf-token'] = c;
  const r = await fetch(u, { method: m, headers, body: b === undefined ? undefined : JSON.stringify(b) });
  return { status: r.status, body: await r.text() };
}, [method, url, csrf, body]);

/** A call of the REST API by another client (its bearer token, no browser). */
async function otherClient(method, url, body) {
  const r = await fetch(new URL(url, ORIGIN), {
    method,
    headers: { authorization: `Bearer ${env('API_TOKEN')}`, 'content-type': 'application/json', accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(r.ok, `${method} ${url}: ${r.status} ${await r.text()}`);
}

async function signIn(page, user, password) {
  await page.goto(PORTAL);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** A page on another origin whose form posts to the MEAO when loaded (a cross-site request). */
function attacker() {
  const server = http.createServer((_, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><form id="f" method="post" enctype="text/plain"
      action="${ORIGIN}/app_pkgm/v1/app_packages"><input name='{"appPkgName":"forged","appPkgVersion":"1","x":"' value='"}'></form>
      <script>document.getElementById('f').submit()</script>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * A page at 1280×800 in a context of its own that accepts confirmations, collecting the
 * script errors it shows (not the 4xx answers the test provokes).
 */
async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && !m.text().includes('status of 4') && errors.push(m.text()));
  page.on('dialog', (d) => d.accept());
  return { context, page, errors };
}

async function operatorWalkThrough(browser) {
  const { context, page, errors } = await newPage(browser);

  step('a wrong password is refused next to the form');
  await page.goto(PORTAL);
  await shot(page, 'sign-in');
  assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'no navigation before sign-in');
  await page.getByLabel('User name').fill('operator');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();

  step('sign in as operator');
  await signIn(page, 'operator', env('OPERATOR_PASSWORD'));
  await page.getByRole('heading', { name: 'Packages' }).waitFor();

  step('a broken package shows every problem with its path');
  await page.locator('input[type=file]').setInputFiles(env('BROKEN_PACKAGE'));
  assert.equal(await page.getByLabel('Package name').inputValue(), 'cdn-cache');
  await page.getByRole('button', { name: 'Upload' }).click();
  const problems = page.getByRole('alert').filter({ hasText: 'Onboarding cdn-cache failed' });
  await problems.waitFor();
  const listed = await problems.locator('li').allTextContents();
  assert.ok(listed.some((p) => p.startsWith('cdn-cache.yaml#/appTrafficRule/0/action')), listed.join('\n'));
  assert.ok(listed.some((p) => p.includes('"appDVersion" is a required property')), listed.join('\n'));
  await page.locator('tr[data-package=cdn-cache]').getByRole('button', { name: 'Details' }).click();
  await page.locator('[data-problems=cdn-cache] li').first().waitFor();
  await shot(page, 'package-problems');

  step('the example package is ONBOARDED');
  await page.locator('input[type=file]').setInputFiles(env('GOOD_PACKAGE'));
  await page.getByLabel('Package name').fill('video-analytics');
  await page.getByRole('button', { name: 'Upload' }).click();
  const va = page.locator('tr[data-package=video-analytics]');
  await va.getByText('ONBOARDED', { exact: true }).waitFor();
  await va.getByText('ENABLED', { exact: true }).waitFor();
  await va.getByRole('button', { name: 'Details' }).click();
  await page.getByRole('heading', { name: 'Application descriptor' }).waitFor();
  const signature = page.getByLabel('Package details').locator('[data-signature]');
  await signature.getByText('verified', { exact: true }).waitFor();
  assert.match(await signature.innerText(), /signed by ACME Vision releases, issued by ACME Vision CA, valid until \d{4}-\d{2}-\d{2}/);
  await page.getByText('video-detections').first().waitFor();
  await shot(page, 'packages');

  step('the broken package is deleted');
  await page.locator('tr[data-package=cdn-cache]').getByRole('button', { name: 'Delete' }).click();
  await page.locator('tr[data-package=cdn-cache]').waitFor({ state: 'detached' });

  step('the page does not poll: a change through the REST API arrives as a live update');
  const feed = page.getByLabel('Activity');
  await feed.locator('li', { hasText: 'operator' }).filter({ hasText: 'ONBOARDED' }).first().waitFor();
  await feed.locator('li', { hasText: 'Package cdn-cache' }).filter({ hasText: 'deleted' }).waitFor();
  await page.waitForTimeout(500); // the reload that change caused
  await page.evaluate(() => { window.notReloaded = true; });
  const reads = [];
  const onRequest = (r) => r.method() === 'GET' && r.url().endsWith('/app_pkgm/v1/app_packages') && reads.push(r.url());
  page.on('request', onRequest);
  await page.waitForTimeout(3000);
  assert.deepEqual(reads, [], 'nothing changed and nothing was read again');
  const vaId = (JSON.parse((await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages')).body)
    .find((p) => p.appName === 'video-analytics')).id;
  await otherClient('PATCH', `/app_pkgm/v1/app_packages/${vaId}`, { operationalState: 'DISABLED' });
  await va.getByText('DISABLED', { exact: true }).waitFor();
  const byApi = feed.locator(`li[data-resource="${vaId}"]`, { hasText: 'oss (API)' }).filter({ hasText: 'DISABLED' });
  await byApi.waitFor();
  assert.match(await byApi.innerText(), /Package video-analytics/);
  assert.ok(reads.length >= 1, 'the change made the page read its packages');
  page.off('request', onRequest);
  await otherClient('PATCH', `/app_pkgm/v1/app_packages/${vaId}`, { operationalState: 'ENABLED' });
  await va.getByText('ENABLED', { exact: true }).waitFor();
  assert.ok(await page.evaluate(() => window.notReloaded), 'the page was not reloaded');
  await shot(page, 'activity');

  step('deploy near Paris with the placement preview');
  await page.getByRole('link', { name: 'Applications' }).click();
  await page.getByRole('heading', { name: 'Deploy an application' }).waitFor();
  await page.getByLabel('Instance name').fill('va-paris');
  await page.getByLabel('Near a location').check();
  await page.getByLabel('Latitude').fill('48.85');
  await page.getByLabel('Longitude').fill('2.35');
  await page.getByRole('button', { name: 'Preview placement' }).click();
  const preview = page.getByLabel('Placement preview').first();
  await preview.getByText('paris-1', { exact: true }).first().waitFor();
  assert.match(await preview.innerText(), /Placement: paris-1/);
  assert.match(await preview.innerText(), /marseille-1: no x86_64 nodes/);
  await shot(page, 'placement-preview');
  await page.getByRole('button', { name: 'Deploy' }).click();
  const op = page.getByLabel('Operation', { exact: true });
  await op.getByText('COMPLETED', { exact: true }).first().waitFor();
  for (const name of ['place', 'apply', 'await-ready']) {
    await op.locator(`[data-step="${name}"]`).getByText('COMPLETED', { exact: true }).waitFor();
  }
  const row = page.locator('tr[data-instance=va-paris]');
  await row.getByText('INSTANTIATED', { exact: true }).waitFor();
  await row.getByText('STARTED', { exact: true }).waitFor();
  await row.getByText('paris-1', { exact: true }).waitFor();
  const instanceId = await row.getAttribute('data-instance-id');
  await shot(page, 'applications');

  step('stop and start');
  await row.getByRole('button', { name: 'Stop' }).click();
  await row.getByText('STOPPED', { exact: true }).waitFor();
  await row.getByRole('button', { name: 'Start' }).click();
  await row.getByText('STARTED', { exact: true }).waitFor();

  step("the sites page shows health, capacity and that paris-1's MEP acknowledged the instance");
  await page.getByRole('link', { name: 'Sites' }).click();
  const paris = page.locator('tr[data-site=paris-1]');
  await paris.getByText('healthy', { exact: true }).waitFor();
  await paris.getByText('connected', { exact: true }).waitFor();
  await paris.getByRole('button', { name: 'Details' }).click();
  const atMep = page.getByLabel('Site paris-1').locator(`tr[data-mep-instance="${instanceId}"]`);
  await atMep.getByText('acknowledged', { exact: true }).waitFor();
  await page.getByLabel('Site paris-1').locator('tr[data-site-instance=va-paris]').getByText('STARTED').waitFor();
  await shot(page, 'sites');

  step('terminate and delete');
  await page.getByRole('link', { name: 'Applications' }).click();
  await row.getByLabel('Graceful timeout of va-paris (s)').fill('1');
  await row.getByRole('button', { name: 'Terminate' }).click();
  await row.getByText('NOT_INSTANTIATED', { exact: true }).waitFor();
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });

  step('an operation that cannot go on waits in FAILED_TEMP with its failed step; retry, then fail it');
  await page.getByLabel('Instance name').fill('va-marseille');
  await page.getByLabel('On a site').check();
  await page.getByLabel('Site', { exact: true }).selectOption('marseille-1');
  await page.getByRole('button', { name: 'Deploy' }).click();
  await op.getByText('FAILED_TEMP', { exact: true }).first().waitFor();
  const place = op.locator('[data-step="place"]');
  await place.getByText('FAILED', { exact: true }).waitFor();
  assert.match(await place.innerText(), /no site can host the application/);
  assert.match(await op.locator('[data-step="apply"]').innerText(), /NOT_STARTED/);
  // its row, once the operations table shows it (the live update may come after the toast)
  const waiting = page.locator('tr[data-op-row]', { hasText: 'FAILED_TEMP' }).first();
  await waiting.waitFor();
  const opId = await waiting.getAttribute('data-op-row');
  const failing = page.locator(`tr[data-op-row="${opId}"]`);
  await failing.getByRole('button', { name: 'Details' }).click();
  const details = page.getByLabel('Operation details');
  await details.locator('[data-step="place"]').getByText('FAILED', { exact: true }).waitFor();
  await shot(page, 'operation-failed-temp');
  await details.getByRole('button', { name: 'Retry' }).click();
  // the retry runs the operation again (the operator's change to PROCESSING) and it pauses again
  await feed.locator(`li[data-resource="${opId}"]`, { hasText: 'operator' }).filter({ hasText: 'PROCESSING' }).waitFor();
  await page.locator('#toast').getByText('Retry INSTANTIATE: FAILED_TEMP').waitFor();
  await details.getByRole('button', { name: 'Fail' }).click();
  await failing.getByText('FAILED', { exact: true }).waitFor();
  // FAILED is final: nothing to retry or fail any more
  await details.getByRole('button', { name: 'Retry' }).waitFor({ state: 'detached' });
  assert.equal(await details.getByRole('button', { name: /Retry|Fail/ }).count(), 0);
  const marseille = page.locator('tr[data-instance=va-marseille]');
  await marseille.getByRole('button', { name: 'Delete' }).click();
  await marseille.waitFor({ state: 'detached' });

  step('a request without the CSRF token is refused');
  const noCsrf = await pageFetch(page, 'POST', '/app_pkgm/v1/app_packages', { body: { appPkgName: 'forged', appPkgVersion: '1' } });
  assert.equal(noCsrf.status, 403, noCsrf.body);
  assert.match(noCsrf.body, /x-csrf-token/);

  step('a cross-site form post is refused');
  const evil = await attacker();
  const attack = await context.newPage();
  const posted = attack.waitForResponse((r) => r.url().startsWith(`${ORIGIN}/app_pkgm`));
  await attack.goto(`http://127.0.0.1:${evil.address().port}/`);
  const response = await posted;
  assert.ok([401, 403, 415].includes(response.status()), `cross-site post answered ${response.status()}`);
  evil.close();
  const list = JSON.parse((await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages')).body);
  assert.deepEqual(list.map((p) => p.appName), ['video-analytics'], 'no forged package');

  step('sign-out ends the session');
  const [cookie] = await context.cookies();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  const after = await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages');
  assert.equal(after.status, 401);
  // the old cookie, presented again, is worthless
  await context.addCookies([cookie]);
  const replayed = await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages');
  assert.equal(replayed.status, 401);
  assert.deepEqual(errors, [], 'no script errors');
  await context.close();
}

async function admin(browser) {
  const { context, page, errors } = await newPage(browser);
  await signIn(page, 'admin', env('ADMIN_PASSWORD'));
  await page.getByRole('link', { name: 'Sites' }).click();
  const { csrfToken } = JSON.parse((await pageFetch(page, 'GET', '/portal/session')).body);
  const packages = await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages');
  assert.equal(packages.status, 200, packages.body);
  const [pkg] = JSON.parse(packages.body);
  const nearNice = async () => JSON.parse((await pageFetch(page, 'POST', '/inventory/v1/placement',
    { csrf: csrfToken, body: { appDId: pkg.appDId, userLocation: { latitude: 43.70, longitude: 7.26 } } })).body);

  step('an admin adds a simulated site through the form');
  await page.getByRole('button', { name: 'Add a site' }).click();
  let form = page.getByLabel('Add a site');
  await form.getByLabel('Site id', { exact: true }).fill('nice-1');
  await form.getByLabel('Name', { exact: true }).fill('Nice Arenas');
  await form.getByLabel('Zone', { exact: true }).fill('provence');
  await form.getByLabel('Services').fill('RNIS, LocationService');
  await form.getByLabel('Latitude').fill('43.70');
  await form.getByLabel('Longitude').fill('7.22');
  await form.getByLabel('CPU (millicores)').fill('8000');
  await form.getByLabel('Memory (MiB)').fill('16384');
  await form.getByRole('button', { name: 'Add site' }).click();
  const nice = page.locator('tr[data-site=nice-1]');
  await nice.getByText('simulated', { exact: true }).waitFor();
  const niceCard = page.getByLabel('Site nice-1', { exact: true });
  await niceCard.getByText('in service', { exact: true }).waitFor();
  // its first refresh finds it healthy (a change the page hears of)
  await nice.getByText('healthy', { exact: true }).waitFor();
  const fresh = await nearNice();
  assert.ok(fresh.ranked.some((c) => c.siteId === 'nice-1'), `placement may choose the new site: ${JSON.stringify(fresh)}`);

  step('out of service, placement passes the site over; back in service, it may choose it');
  await niceCard.getByRole('button', { name: 'Take out of service' }).click();
  await nice.getByText('out of service', { exact: true }).waitFor();
  const resting = await nearNice();
  assert.deepEqual(resting.rejected['out of service'], ['nice-1'], JSON.stringify(resting));
  const listed = JSON.parse((await pageFetch(page, 'GET', '/inventory/v1/sites/nice-1')).body);
  assert.equal(listed.inService, false, 'the API reports it');
  await niceCard.getByRole('button', { name: 'Put in service' }).click();
  await nice.getByText('out of service', { exact: true }).waitFor({ state: 'detached' });
  assert.ok((await nearNice()).ranked.some((c) => c.siteId === 'nice-1'));

  step('a Kubernetes site from an uploaded kubeconfig, edited without uploading it again');
  await page.getByRole('button', { name: 'Add a site' }).click();
  form = page.getByLabel('Add a site');
  await form.getByLabel('Site id', { exact: true }).fill('edge-k8s');
  await form.getByLabel('Zone', { exact: true }).fill('provence');
  await form.getByLabel('Latitude').fill('43.6');
  await form.getByLabel('Longitude').fill('7.0');
  await form.getByLabel('VIM kind').selectOption('kubernetes');
  await form.getByRole('button', { name: 'Add site' }).click();
  await form.getByRole('alert').filter({ hasText: 'kubeconfig' }).waitFor();
  await form.locator('input[type=file]').setInputFiles(env('KUBECONFIG_FILE'));
  await form.getByLabel('Namespace').fill('edge-apps');
  await form.getByRole('button', { name: 'Add site' }).click();
  const k8s = page.locator('tr[data-site=edge-k8s]');
  await k8s.getByText('kubernetes', { exact: false }).waitFor();
  const shown = (await pageFetch(page, 'GET', '/inventory/v1/sites/edge-k8s')).body;
  assert.ok(!shown.includes('not-a-real-token') && !shown.includes('kubeconfigContent'), shown);
  await page.getByLabel('Site edge-k8s', { exact: true }).getByRole('button', { name: 'Edit' }).click();
  form = page.getByLabel('Edit site edge-k8s');
  await form.getByLabel('Name', { exact: true }).fill('Sophia edge cluster');
  await form.getByRole('button', { name: 'Save site' }).click();
  await k8s.getByText('Sophia edge cluster').waitFor();
  await k8s.getByText('unhealthy', { exact: true }).waitFor();
  await shot(page, 'sites-admin');

  step('the admin deletes the sites it added');
  for (const [id, row] of [['nice-1', nice], ['edge-k8s', k8s]]) {
    await row.getByRole('button', { name: 'Details' }).click();
    await page.getByLabel(`Site ${id}`, { exact: true }).getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
  }
  assert.deepEqual(errors, [], 'no script errors');
  await context.close();
}

async function viewer(browser) {
  const { context, page } = await newPage(browser);
  step('a viewer sees everything and changes nothing');
  await signIn(page, 'viewer', env('VIEWER_PASSWORD'));
  await page.getByText('you can see everything and change nothing').waitFor();
  const va = page.locator('tr[data-package=video-analytics]');
  await va.getByText('ONBOARDED', { exact: true }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Upload' }).count(), 0);
  assert.equal(await va.getByRole('button', { name: /Delete|Disable/ }).count(), 0);
  await shot(page, 'viewer-packages');
  await page.getByRole('link', { name: 'Applications' }).click();
  await page.getByRole('heading', { name: 'Instances' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Deploy' }).count(), 0);

  // and the endpoints behind the pages refuse it, with its own CSRF token
  const { csrfToken } = JSON.parse((await pageFetch(page, 'GET', '/portal/session')).body);
  const packages = JSON.parse((await pageFetch(page, 'GET', '/app_pkgm/v1/app_packages')).body);
  const id = packages[0].id;
  const tries = [
    ['PATCH', `/app_pkgm/v1/app_packages/${id}`, { operationalState: 'DISABLED' }],
    ['DELETE', `/app_pkgm/v1/app_packages/${id}`, undefined],
    ['POST', '/app_pkgm/v1/app_packages', { appPkgName: 'x', appPkgVersion: '1' }],
    ['POST', '/app_lcm/v1/app_instances', { appDId: packages[0].appDId }],
    ['DELETE', '/inventory/v1/sites/paris-1', undefined],
  ];
  for (const [method, url, body] of tries) {
    const r = await pageFetch(page, method, url, { csrf: csrfToken, body });
    assert.equal(r.status, 403, `viewer ${method} ${url}: ${r.body}`);
  }
  const preview = await pageFetch(page, 'POST', '/inventory/v1/placement', { csrf: csrfToken, body: { appDId: packages[0].appDId } });
  assert.equal(preview.status, 200, 'a placement preview is a query');
  await context.close();
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  await operatorWalkThrough(browser);
  await admin(browser);
  await viewer(browser);
  step('passed');
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
