import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { logForwarderCatalog, logForwarderConfigSchema } from '@switchyard/log-forwarder';
import { checkProxyConfig, proxyCatalog, proxyConfigSchema } from '@switchyard/proxy';
import { relayCatalog, relayConfigSchema } from '@switchyard/relay';
import {
  ADMIN_ROUTES,
  type Catalog,
  httpServerCatalog,
  PROCESS_METRICS,
  prometheusMetricName,
  telemetryCatalog,
} from '@switchyard/telemetry';
import { parse as parseYaml } from 'yaml';
import { kubernetesSchemaProblems } from './support/kubernetes-schema.ts';
import {
  type Manifest,
  mergePatch,
  objectId,
  readYamlDocuments,
  renderKustomization,
} from './support/kustomize.ts';
import { checkRules, testRules } from './support/promtool.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const deploy = join(root, 'deploy');
const kubernetes = join(deploy, 'kubernetes');
const RENDERINGS = ['base', 'overlays/example', 'overlays/otlp-push'] as const;
interface AdminSettings {
  telemetry: { admin: { host: string; port: number } };
}
const WORKERS = [
  {
    name: 'proxy',
    object: 'Deployment/switchyard-proxy',
    container: 'proxy',
    adminPort: 9401,
    preStop: ['sleep', '5'],
    parseConfig: (config: unknown): AdminSettings => checkProxyConfig(proxyConfigSchema.parse(config)),
  },
  {
    name: 'log-forwarder',
    object: 'DaemonSet/switchyard-log-forwarder',
    container: 'log-forwarder',
    adminPort: 9403,
    preStop: undefined,
    parseConfig: (config: unknown): AdminSettings => logForwarderConfigSchema.parse(config),
  },
  {
    name: 'relay',
    object: 'StatefulSet/switchyard-relay',
    container: 'relay',
    adminPort: 9402,
    preStop: ['sleep', '5'],
    parseConfig: (config: unknown): AdminSettings => relayConfigSchema.parse(config),
  },
] as const;
const WORKLOAD_KINDS = ['Deployment', 'DaemonSet', 'StatefulSet'];
const DOWNWARD_API = ['K8S_POD_NAME', 'K8S_POD_UID', 'K8S_NAMESPACE_NAME', 'K8S_NODE_NAME'];
const COLLECTOR_ENDPOINT = 'http://switchyard-otel-collector:4317';

type Json = Record<string, unknown>;
interface Container extends Json {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Json; limits?: Json };
  securityContext?: Json & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec extends Json {
  containers: Container[];
  initContainers?: Container[];
  volumes?: (Json & {
    name: string;
    secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number };
  })[];
  securityContext?: Json;
  terminationGracePeriodSeconds?: number;
}

const rendered = new Map(RENDERINGS.map((dir) => [dir, renderKustomization(join(kubernetes, dir))]));

function rendering(dir: (typeof RENDERINGS)[number]): Manifest[] {
  const objects = rendered.get(dir);
  assert.ok(objects !== undefined);
  return objects;
}

function find(objects: Manifest[], id: string): Manifest {
  const object = objects.find((candidate) => objectId(candidate) === id);
  assert.ok(object !== undefined, `${id} is missing; objects: ${objects.map(objectId).join(', ')}`);
  return object;
}

function podTemplate(object: Manifest): { labels: Record<string, string>; spec: PodSpec } {
  const template = (
    object.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } }
  ).template;
  return { labels: template.metadata.labels, spec: template.spec };
}

function workerContainer(objects: Manifest[], worker: (typeof WORKERS)[number]): Container {
  const container = podTemplate(find(objects, worker.object)).spec.containers.find(
    (candidate) => candidate.name === worker.container,
  );
  assert.ok(container !== undefined, `${worker.object} has no container ${worker.container}`);
  return container;
}

function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function labelsOf(object: Manifest): Record<string, string> | undefined {
  return object.metadata.labels as Record<string, string> | undefined;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => join(dir, entry))
    .filter((path) => statSync(path).isFile());
}

function workerConfig(objects: Manifest[], worker: (typeof WORKERS)[number]): Json {
  const configMap = find(objects, `ConfigMap/switchyard-${worker.name}`);
  const text = (configMap.data as Record<string, string>)[`${worker.name}.yaml`];
  assert.ok(text !== undefined, `${objectId(configMap)} has no ${worker.name}.yaml`);
  return parseYaml(text) as Json;
}

function durationSeconds(text: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(text);
  assert.ok(match !== null, `unsupported duration ${text}`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60 }[match[2] as 'ms' | 's' | 'm'];
}

test('every YAML file under deploy/ parses', () => {
  const files = filesUnder(deploy).filter((file) => /\.ya?ml$/.test(file));
  assert.ok(files.length >= 20, `only ${files.length} YAML files found`);
  for (const file of files) assert.doesNotThrow(() => readYamlDocuments(file), relative(root, file));
});

test('every object of every rendering passes the official schemas, with no unknown keys', () => {
  for (const [dir, objects] of rendered) {
    assert.ok(objects.length > 0, `${dir} renders nothing`);
    for (const object of objects)
      assert.deepEqual(kubernetesSchemaProblems(object), [], `${dir}: ${objectId(object)}`);
  }
});

test('the schema check refuses a misspelt key and a wrong type', () => {
  const deployment = structuredClone(find(rendering('base'), 'Deployment/switchyard-proxy'));
  const container = podTemplate(deployment).spec.containers[0] as Container;
  container.livenesProbe = container.livenessProbe;
  container.resources = { requests: { cpu: '250m' }, limits: { memory: '512Mi' } };
  (podTemplate(deployment).spec as Json).terminationGracePeriodSeconds = 'thirty';
  const problems = kubernetesSchemaProblems(deployment);
  assert.ok(
    problems.some((problem) => problem.includes('unknown key "livenesProbe"')),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((problem) => problem.includes('terminationGracePeriodSeconds')),
    problems.join('\n'),
  );
  const monitor = structuredClone(find(rendering('base'), 'ServiceMonitor/switchyard-proxy'));
  ((monitor.spec as { endpoints: Json[] }).endpoints[0] as Json).scrapeTimout = '10s';
  assert.deepEqual(kubernetesSchemaProblems(monitor), ['/spec/endpoints/0: unknown key "scrapeTimout"']);
  const statefulSet = structuredClone(find(rendering('base'), 'StatefulSet/switchyard-relay'));
  const statefulSpec = statefulSet.spec as Json;
  statefulSpec.serviceNmae = statefulSpec.serviceName;
  statefulSpec.volumeClaimTemplates = [
    {
      metadata: { name: 'relay-key' },
      spec: { resources: { requests: { storage: '1Mi' } }, storageClas: 'x' },
    },
  ];
  assert.deepEqual(kubernetesSchemaProblems(statefulSet), [
    '/spec: unknown key "serviceNmae"',
    '/spec/volumeClaimTemplates/0/spec: unknown key "storageClas"',
  ]);
});

test('the ConfigMaps hold configs the workers accept, with the admin server on the pod IP', () => {
  for (const [dir, objects] of rendered) {
    const forwarder = logForwarderConfigSchema.parse(workerConfig(objects, WORKERS[1]));
    assert.match(forwarder.socket.path, /^\/var\/run\/switchyard\//, `${dir}: socket in the hostPath dir`);
    for (const worker of WORKERS) {
      const config = worker.parseConfig(workerConfig(objects, worker));
      assert.equal(config.telemetry.admin.host, '0.0.0.0', `${dir}: ${worker.name} admin host`);
      assert.equal(config.telemetry.admin.port, worker.adminPort, `${dir}: ${worker.name} admin port`);
      const metricsPort = workerContainer(objects, worker).ports?.find((port) => port.name === 'metrics');
      assert.equal(metricsPort?.containerPort, worker.adminPort, `${dir}: ${worker.name} metrics port`);
    }
  }
});

test('worker pods probe /healthz and /readyz, read the downward API and mount their config read-only', () => {
  for (const [dir, objects] of rendered) {
    for (const worker of WORKERS) {
      const where = `${dir}: ${worker.object}`;
      const { spec } = podTemplate(find(objects, worker.object));
      const container = workerContainer(objects, worker);
      assert.deepEqual(container.livenessProbe?.httpGet, { path: '/healthz', port: 'metrics' }, where);
      assert.deepEqual(container.readinessProbe?.httpGet, { path: '/readyz', port: 'metrics' }, where);
      assert.equal(container.args?.[0], worker.name, `${where}: the entrypoint's first argument`);
      assert.deepEqual(container.args?.slice(1), ['--config', `/etc/switchyard/${worker.name}.yaml`], where);
      for (const variable of DOWNWARD_API) {
        const entry = container.env?.find((candidate) => candidate.name === variable);
        assert.ok(entry?.valueFrom?.fieldRef?.fieldPath, `${where}: ${variable} from the downward API`);
      }
      for (const key of ['cpu', 'memory']) {
        assert.ok(container.resources?.requests?.[key], `${where}: requests.${key}`);
        assert.ok(container.resources?.limits?.[key], `${where}: limits.${key}`);
      }
      const config = container.volumeMounts?.find((mount) => mount.mountPath === '/etc/switchyard');
      assert.equal(config?.readOnly, true, `${where}: config mounted read-only`);
      const configVolume = spec.volumes?.find((volume) => volume.name === config?.name);
      assert.deepEqual(configVolume?.configMap, { name: `switchyard-${worker.name}` }, where);
      const tmp = container.volumeMounts?.find((mount) => mount.mountPath === '/tmp');
      assert.ok(
        spec.volumes?.find((volume) => volume.name === tmp?.name)?.emptyDir,
        `${where}: /tmp emptyDir`,
      );
    }
  }
});

test('every container runs non-root, read-only, without privilege escalation or capabilities', () => {
  for (const [dir, objects] of rendered) {
    for (const object of objects.filter((candidate) => WORKLOAD_KINDS.includes(candidate.kind))) {
      const { spec } = podTemplate(object);
      assert.equal(spec.securityContext?.runAsNonRoot, true, `${dir}: ${objectId(object)} pod runAsNonRoot`);
      assert.deepEqual(spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
      for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const where = `${dir}: ${objectId(object)} container ${container.name}`;
        const context = container.securityContext;
        assert.equal(context?.allowPrivilegeEscalation, false, where);
        assert.equal(context?.readOnlyRootFilesystem, true, where);
        assert.deepEqual(context?.seccompProfile, { type: 'RuntimeDefault' }, where);
        assert.deepEqual(context?.capabilities?.drop, ['ALL'], where);
        const isSocketDirInit = object.kind === 'DaemonSet' && container.name === 'socket-dir';
        if (isSocketDirInit) {
          // The one exception: chown of the hostPath directory, with CAP_CHOWN alone.
          assert.deepEqual(context?.capabilities?.add, ['CHOWN'], where);
          assert.deepEqual(container.command?.slice(0, 1), ['chown'], where);
        } else {
          assert.equal(context?.runAsNonRoot, true, where);
          assert.equal(context?.capabilities?.add, undefined, where);
        }
      }
    }
  }
});

test('the termination grace period outlasts the preStop pause plus shutdownGraceMs', () => {
  for (const [dir, objects] of rendered) {
    for (const worker of WORKERS) {
      const { spec } = podTemplate(find(objects, worker.object));
      const preStop = workerContainer(objects, worker).lifecycle?.preStop?.exec?.command;
      const pauseSeconds = preStop === undefined ? 0 : Number(preStop[1]);
      assert.deepEqual(preStop, worker.preStop, `${dir}: ${worker.name} preStop`);
      const graceMs = workerConfig(objects, worker).shutdownGraceMs;
      const graceSeconds =
        typeof graceMs === 'string' ? durationSeconds(graceMs) : Number(graceMs ?? 10_000) / 1000;
      assert.ok(
        (spec.terminationGracePeriodSeconds ?? 30) > pauseSeconds + graceSeconds + 5,
        `${dir}: ${worker.object}: ${spec.terminationGracePeriodSeconds} s is not longer than ${pauseSeconds} s + ${graceSeconds} s + 5 s to flush`,
      );
    }
  }
});

test('the log forwarder is a DaemonSet with its socket directory on the hostPath /var/run/switchyard', () => {
  for (const [dir, objects] of rendered) {
    const { spec } = podTemplate(find(objects, 'DaemonSet/switchyard-log-forwarder'));
    const volume = spec.volumes?.find((candidate) => candidate.hostPath !== undefined);
    assert.deepEqual(volume?.hostPath, { path: '/var/run/switchyard', type: 'DirectoryOrCreate' }, dir);
    const mount = workerContainer(objects, WORKERS[1]).volumeMounts?.find((m) => m.name === volume?.name);
    assert.equal(mount?.mountPath, '/var/run/switchyard', dir);
  }
});

const RELAY = WORKERS[2];

/** The mount of `volume` in `container` whose directory holds `path`, and the volume itself. */
function volumeHolding(spec: PodSpec, container: Container, path: string) {
  const mount = container.volumeMounts?.find((candidate) => candidate.mountPath === dirname(path));
  return { mount, volume: spec.volumes?.find((candidate) => candidate.name === mount?.name) };
}

test('the relays are a StatefulSet named through a headless Service, and each lists every replica as a mesh peer', () => {
  for (const [dir, objects] of rendered) {
    const statefulSet = find(objects, RELAY.object);
    const { replicas, serviceName } = statefulSet.spec as { replicas: number; serviceName: string };
    const headless = find(objects, `Service/${serviceName}`).spec as Json;
    assert.equal(headless.clusterIP, 'None', `${dir}: ${serviceName} is headless`);
    assert.equal(headless.publishNotReadyAddresses, true, `${dir}: relays starting together find each other`);
    const namespace = statefulSet.metadata.namespace;
    const domain = namespace === undefined ? serviceName : `${serviceName}.${namespace}.svc`;
    const config = relayConfigSchema.parse(workerConfig(objects, RELAY));
    assert.deepEqual(
      config.mesh.peers,
      Array.from({ length: replicas }, (_, ordinal) => ({
        name: `${statefulSet.metadata.name}-${ordinal}`,
        url: `http://${statefulSet.metadata.name}-${ordinal}.${domain}:7403/derp`,
      })),
      `${dir}: mesh.peers lists the ${replicas} replicas by their stable names`,
    );
    assert.equal(config.listen, '0.0.0.0:7403', dir);
    assert.equal(config.tls, undefined, `${dir}: plain HTTP inside the cluster`);
    const container = workerContainer(objects, RELAY);
    assert.equal(container.ports?.find((port) => port.name === 'derp')?.containerPort, 7403, dir);
    const { spec } = podTemplate(statefulSet);

    assert.ok(config.mesh.keyFile !== undefined, `${dir}: mesh.keyFile`);
    const meshKey = volumeHolding(spec, container, config.mesh.keyFile);
    assert.equal(meshKey.mount?.readOnly, true, `${dir}: mesh key mounted read-only`);
    assert.equal(
      meshKey.volume?.secret?.secretName,
      'switchyard-relay-mesh',
      `${dir}: mesh key from a Secret`,
    );
    assert.deepEqual(meshKey.volume?.secret?.items, [
      { key: 'mesh-key', path: basename(config.mesh.keyFile) },
    ]);
    assert.equal(
      (meshKey.volume?.secret?.defaultMode ?? 0o644) & 0o007,
      0,
      `${dir}: mesh key not world-readable`,
    );

    const relayKey = volumeHolding(spec, container, config.keyFile);
    assert.notEqual(relayKey.mount?.readOnly, true, `${dir}: the key file's directory is writable`);
    assert.ok(relayKey.volume?.emptyDir, `${dir}: the key file lives on an emptyDir`);

    const derp = find(objects, 'Service/switchyard-relay-derp').spec as { clusterIP?: string; ports: Json[] };
    assert.notEqual(derp.clusterIP, 'None', `${dir}: DERP clients get a ClusterIP`);
    assert.deepEqual(
      derp.ports.map((port) => [port.name, port.port]),
      [['derp', 7403]],
      `${dir}: the DERP Service carries no metrics port`,
    );
  }
});

test('the Kubernetes objects and the relay config shown in deploy/README.md validate', () => {
  const readme = readFileSync(join(deploy, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### The relay'), readme.indexOf('### Scrape tokens'));
  const documents = [...section.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map(
    (match) => parseYaml(match[1] as string) as Json,
  );
  const statefulSet = find(rendering('base'), RELAY.object);
  const objects = documents.filter((document) => typeof document.kind === 'string') as Manifest[];
  assert.deepEqual(objects.map(objectId), [
    'Service/switchyard-relay-0-public',
    'StatefulSet/switchyard-relay',
    'Ingress/switchyard-relay',
  ]);
  const [publicService, tlsPatch, ingress] = objects as [Manifest, Manifest, Manifest];
  // The StatefulSet is a patch: what it renders to must validate.
  const patched = mergePatch(statefulSet, tlsPatch, true) as Manifest;
  for (const object of [publicService, patched, ingress])
    assert.deepEqual(kubernetesSchemaProblems(object), [], objectId(object));

  const configs = documents.filter((document) => 'listen' in document);
  assert.equal(configs.length, 1);
  const config = relayConfigSchema.parse(configs[0]);
  const { spec } = podTemplate(patched);
  const container = spec.containers.find((candidate) => candidate.name === RELAY.container);
  assert.ok(container !== undefined && config.tls !== undefined && config.mesh.keyFile !== undefined);
  for (const file of [config.tls.certFile, config.tls.keyFile, config.mesh.keyFile, config.keyFile])
    assert.ok(volumeHolding(spec, container, file).volume, `${file} has a volume`);

  assert.deepEqual((publicService.spec as { selector: Json }).selector, {
    'statefulset.kubernetes.io/pod-name': 'switchyard-relay-0',
  });
  assert.equal(labelsOf(publicService), undefined, 'no labels: the ServiceMonitor leaves it alone');
  const ingressSpec = ingress.spec as { rules: { http: { paths: { backend: { service: Json } }[] } }[] };
  const backend = ingressSpec.rules[0]?.http.paths[0]?.backend.service;
  assert.deepEqual(backend, { name: 'switchyard-relay-derp', port: { name: 'derp' } });
  find(rendering('base'), 'Service/switchyard-relay-derp');
});

test('Services select their pods, ServiceMonitors select Services by labels and name their ports', () => {
  for (const [dir, objects] of rendered) {
    const workloads = objects.filter((object) => WORKLOAD_KINDS.includes(object.kind));
    const services = objects.filter((object) => object.kind === 'Service');
    for (const service of services) {
      const spec = service.spec as { selector: Record<string, string>; ports: { targetPort: string }[] };
      const pods = workloads.filter((workload) => selects(spec.selector, podTemplate(workload).labels));
      assert.equal(pods.length, 1, `${dir}: ${objectId(service)} selects one workload`);
      const containerPorts = podTemplate(pods[0] as Manifest).spec.containers.flatMap((c) => c.ports ?? []);
      for (const port of spec.ports)
        assert.ok(
          containerPorts.some((p) => p.name === port.targetPort),
          `${dir}: targetPort ${port.targetPort}`,
        );
    }
    for (const monitor of objects.filter((object) => object.kind === 'ServiceMonitor')) {
      const spec = monitor.spec as {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; interval: string; scrapeTimeout: string }[];
      };
      const matched = services.filter((service) => selects(spec.selector.matchLabels, labelsOf(service)));
      assert.equal(matched.length, 1, `${dir}: ${objectId(monitor)} selects one Service`);
      const ports = ((matched[0] as Manifest).spec as { ports: { name: string }[] }).ports.map(
        (port) => port.name,
      );
      for (const endpoint of spec.endpoints) {
        assert.ok(
          ports.includes(endpoint.port),
          `${dir}: ${objectId(monitor)} port ${endpoint.port} not in ${ports}`,
        );
        assert.equal(endpoint.interval, '30s');
        assert.equal(endpoint.scrapeTimeout, '10s');
      }
    }
    for (const budget of objects.filter((object) => object.kind === 'PodDisruptionBudget')) {
      const selector = (budget.spec as { selector: { matchLabels: Record<string, string> } }).selector
        .matchLabels;
      assert.equal(
        workloads.filter((workload) => selects(selector, podTemplate(workload).labels)).length,
        1,
        `${dir}: ${objectId(budget)} covers one workload`,
      );
    }
  }
  for (const worker of WORKERS) {
    for (const kind of ['Service', 'ServiceMonitor', 'PodDisruptionBudget', 'ConfigMap'])
      find(rendering('base'), `${kind}/switchyard-${worker.name}`);
  }
});

test('the example overlay scrapes the workers and pushes nothing: one path per series', () => {
  const objects = rendering('overlays/example');
  for (const worker of WORKERS) {
    find(objects, `ServiceMonitor/switchyard-${worker.name}`);
    const env = workerContainer(objects, worker).env ?? [];
    assert.ok(!env.some((entry) => entry.name.startsWith('OTEL_EXPORTER_OTLP')), `${worker.name} pushes`);
    assert.match(workerContainer(objects, worker).image, /^registry\.example\.com\/switchyard:0\.1\.0$/);
  }
  assert.ok(objects.every((object) => object.metadata.namespace === 'switchyard'));
});

test('the otlp-push overlay pushes to its Collector, which alone is scraped', () => {
  const objects = rendering('overlays/otlp-push');
  const monitors = objects.filter((object) => object.kind === 'ServiceMonitor').map(objectId);
  assert.deepEqual(monitors, ['ServiceMonitor/switchyard-otel-collector']);
  for (const worker of WORKERS) {
    const env = workerContainer(objects, worker).env ?? [];
    const endpoint = env.find((entry) => entry.name === 'OTEL_EXPORTER_OTLP_ENDPOINT');
    assert.equal(endpoint?.value, COLLECTOR_ENDPOINT, worker.name);
    for (const variable of DOWNWARD_API)
      assert.ok(
        env.some((entry) => entry.name === variable),
        variable,
      );
  }
  const logsEndpoint = (workerContainer(objects, WORKERS[1]).env ?? []).find(
    (entry) => entry.name === 'SWITCHYARD_LOG_FORWARDER_COLLECTOR__ENDPOINT',
  );
  assert.equal(logsEndpoint?.value, COLLECTOR_ENDPOINT);

  const service = find(objects, 'Service/switchyard-otel-collector');
  const ports = (service.spec as { ports: { name: string; port: number }[] }).ports;
  assert.equal(ports.find((port) => port.name === 'otlp-grpc')?.port, 4317);
  const monitor = find(objects, 'ServiceMonitor/switchyard-otel-collector');
  assert.equal((monitor.spec as { endpoints: { honorLabels?: boolean }[] }).endpoints[0]?.honorLabels, true);
  assert.equal(
    (find(objects, 'Deployment/switchyard-otel-collector').spec as { replicas: number }).replicas,
    1,
  );

  const configMap = find(objects, 'ConfigMap/switchyard-otel-collector');
  const config = parseYaml((configMap.data as Record<string, string>)['collector.yaml'] ?? '') as {
    receivers: { otlp: { protocols: { grpc: { endpoint: string } } } };
    exporters: Record<string, unknown>;
    service: { pipelines: Record<string, { receivers: string[]; exporters: string[] }> };
  };
  assert.equal(config.receivers.otlp.protocols.grpc.endpoint, '0.0.0.0:4317');
  assert.deepEqual(config.service.pipelines.metrics?.receivers, ['otlp']);
  assert.deepEqual(config.service.pipelines.metrics?.exporters, ['prometheus']);
  assert.deepEqual(config.service.pipelines.logs?.receivers, ['otlp']);
  const exporter = config.exporters.prometheus as { endpoint: string };
  const exportPort = Number(exporter.endpoint.split(':')[1]);
  const { spec } = podTemplate(find(objects, 'Deployment/switchyard-otel-collector'));
  const scraped = ports.find((port) => port.name === 'metrics') as { name: string; port: number } & Json;
  const target = spec.containers[0]?.ports?.find((port) => port.name === scraped.targetPort);
  assert.equal(target?.containerPort, exportPort, 'the scraped port is the Prometheus exporter');
});

const ruleFile = join(deploy, 'prometheus', 'rules.yaml');
const ruleGroups = (parseYaml(readFileSync(ruleFile, 'utf8')) as { groups: RuleGroup[] }).groups;
interface RuleGroup {
  name: string;
  rules: {
    alert?: string;
    expr: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }[];
}

test('the PrometheusRule in the base holds exactly the groups of deploy/prometheus/rules.yaml', () => {
  const rule = find(rendering('base'), 'PrometheusRule/switchyard');
  assert.deepEqual(
    (rule.spec as { groups: RuleGroup[] }).groups,
    ruleGroups,
    'deploy/kubernetes/base/prometheusrule.yaml differs from deploy/prometheus/rules.yaml: copy the groups over',
  );
});

test('every alert has a severity, a summary, a description and a runbook section that exists', () => {
  const runbook = readFileSync(join(root, 'docs', 'runbook.md'), 'utf8');
  const anchors = new Set(
    [...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((match) =>
      (match[1] as string)
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, '')
        .replace(/ /g, '-'),
    ),
  );
  const alerts = ruleGroups.flatMap((group) => group.rules).filter((rule) => rule.alert !== undefined);
  assert.ok(alerts.length >= 8);
  for (const rule of alerts) {
    assert.match(rule.labels?.severity ?? '', /^(critical|warning|info)$/, `${rule.alert}: severity`);
    assert.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    assert.ok(rule.annotations?.description, `${rule.alert}: description`);
    const anchor = /^docs\/runbook\.md#(.+)$/.exec(rule.annotations?.runbook_url ?? '')?.[1];
    assert.ok(
      anchor !== undefined && anchors.has(anchor),
      `${rule.alert}: runbook_url ${rule.annotations?.runbook_url}`,
    );
  }
});

test('promtool accepts the rules with every lint and their unit tests pass', async () => {
  const checked = await checkRules(ruleFile);
  assert.ok(checked.ok, checked.output);
  const tested = await testRules(join(deploy, 'prometheus', 'rules.test.yaml'));
  assert.ok(tested.ok, tested.output);
});

function catalogSeries(catalog: Catalog): string[] {
  return catalog.instruments.flatMap((instrument) =>
    instrument.prometheusType === 'histogram'
      ? ['_bucket', '_sum', '_count'].map((suffix) => instrument.prometheusName + suffix)
      : [instrument.prometheusName],
  );
}

const SHAPES = {
  counter: 'monotonic_counter',
  'up-down counter': 'non_monotonic_counter',
  gauge: 'gauge',
  histogram: 'histogram',
} as const;

const knownSeries = new Set([
  'up',
  ...catalogSeries(proxyCatalog),
  ...catalogSeries(logForwarderCatalog),
  ...catalogSeries(relayCatalog),
  ...catalogSeries(telemetryCatalog),
  ...catalogSeries(httpServerCatalog([...ADMIN_ROUTES])),
  ...PROCESS_METRICS.flatMap((metric) => {
    const name = prometheusMetricName(metric.name, metric.unit, SHAPES[metric.kind]);
    return metric.kind === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
  }),
]);

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects: identifiers outside strings, matchers, ranges and label lists. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)]
    .filter((match) => match[2] === undefined && !PROMQL_KEYWORDS.has((match[1] as string).toLowerCase()))
    .map((match) => match[1] as string);
}

test('the PromQL name extraction finds selectors and skips functions, labels and ranges', () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (le, pool) (rate(a_bucket{job=~"$job", x="y(z)"}[$__rate_interval]))) / on (pool) b > 0 and up == 0',
    ),
    ['a_bucket', 'b', 'up'],
  );
});

const dashboard = JSON.parse(readFileSync(join(deploy, 'grafana', 'switchyard.json'), 'utf8')) as {
  panels: { type: string; title: string; targets?: { expr: string }[] }[];
  templating: { list: { query?: string | { query: string } }[] };
};
const dashboardExprs = dashboard.panels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => target.expr),
);

test('every metric name in the rules and the dashboard is in the catalogs', () => {
  const ruleExprs = ruleGroups.flatMap((group) => group.rules.map((rule) => rule.expr));
  const variableExprs = dashboard.templating.list.flatMap((variable) =>
    typeof variable.query === 'object'
      ? [variable.query.query.replace(/^label_values\((.*), \w+\)$/, '$1')]
      : [],
  );
  for (const expr of [...ruleExprs, ...dashboardExprs, ...variableExprs]) {
    const names = metricNames(expr);
    assert.ok(names.length > 0 || expr.includes('otel_metric_overflow'), `no metric in ${expr}`);
    for (const name of names) assert.ok(knownSeries.has(name), `${name} (in ${expr}) is in no catalog`);
  }
});

test('the dashboard has a row per worker and shows every proxy, log-forwarder, relay and pipeline instrument', () => {
  const rows = dashboard.panels.filter((panel) => panel.type === 'row').map((panel) => panel.title);
  assert.deepEqual(rows, ['Proxy', 'Log forwarder', 'Relay', 'Telemetry pipeline and process']);
  const used = new Set(dashboardExprs.flatMap(metricNames));
  for (const catalog of [proxyCatalog, logForwarderCatalog, relayCatalog, telemetryCatalog]) {
    for (const instrument of catalog.instruments) {
      const name = instrument.prometheusName + (instrument.prometheusType === 'histogram' ? '_bucket' : '');
      assert.ok(used.has(name), `${name} is on no panel`);
    }
  }
});

test('every dashboard query parses as PromQL (promtool, with the variables filled in)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-dashboard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rules = dashboard.panels.flatMap((panel, index) =>
    (panel.targets ?? []).map((target, refIndex) => ({
      record: `dashboard:panel_${index}_${refIndex}`,
      expr: target.expr
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$job', '.+')
        .replaceAll('$instance', '.+'),
    })),
  );
  const file = join(dir, 'dashboard-queries.yaml');
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const checked = await checkRules(file);
  assert.ok(checked.ok, checked.output);
  assert.match(checked.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

const dockerfile = readFileSync(join(deploy, 'Dockerfile'), 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

test('the Dockerfile builds on node:24-slim, copies only paths that exist and runs as a non-root user', () => {
  const froms = instructions.filter((line) => line.startsWith('FROM '));
  assert.ok(froms.length >= 2, 'multi-stage');
  for (const from of froms) assert.match(from, /^FROM node:24-slim\b/);
  const users = instructions.filter((line) => line.startsWith('USER '));
  assert.equal(users.length, 1);
  assert.match(users[0] as string, /^USER (node|[1-9]\d*(:\d+)?)$/);
  assert.ok(
    instructions.indexOf(users[0] as string) > instructions.findLastIndex((l) => l.startsWith('FROM ')),
  );
  const install = instructions.find((line) => line.startsWith('RUN npm ci'));
  assert.match(install ?? '', /--omit=dev/);
  for (const copy of instructions.filter((line) => line.startsWith('COPY ') && !line.includes('--from='))) {
    const sources = copy.split(/\s+/).slice(1, -1);
    for (const source of sources)
      assert.ok(existsSync(join(root, source)), `COPY source ${source} is not in the repo`);
  }
  const runtime = instructions.slice(instructions.findLastIndex((line) => line.startsWith('FROM ')));
  const copied = runtime
    .filter((line) => line.startsWith('COPY '))
    .flatMap((line) => line.split(/\s+/).slice(1, -1));
  for (const path of copied) {
    assert.ok(
      /^(--from=builder|\/app\/node_modules|package\.json|packages\/[\w-]+\/(package\.json|src|proto)|deploy\/entrypoint\.sh)$/.test(
        path,
      ),
      `the runtime stage copies ${path}`,
    );
  }
  for (const worker of WORKERS) {
    assert.match(
      install ?? '',
      new RegExp(`--workspace=@switchyard/${worker.name}\\b`),
      `npm ci for ${worker.name}`,
    );
    for (const path of [`packages/${worker.name}/package.json`, `packages/${worker.name}/src`])
      assert.ok(copied.includes(path), `the runtime stage copies ${path}`);
  }
  const entrypoint = instructions.find((line) => line.startsWith('ENTRYPOINT '));
  assert.equal(entrypoint, 'ENTRYPOINT ["/usr/local/bin/switchyard-entrypoint"]');
  assert.ok(instructions.includes('COPY deploy/entrypoint.sh /usr/local/bin/switchyard-entrypoint'));
});

const entrypoint = join(deploy, 'entrypoint.sh');

function runEntrypoint(
  args: string[],
  appDir = root.replace(/\/$/, ''),
): { status: number | null; stderr: string; output: string } {
  const run = spawnSync(entrypoint, args, {
    encoding: 'utf8',
    env: { ...process.env, SWITCHYARD_APP_DIR: appDir },
    timeout: 20_000,
  });
  return { status: run.status, stderr: run.stderr, output: run.stdout + run.stderr };
}

test('the entrypoint is an executable script that names the workers it knows', (t) => {
  accessSync(entrypoint, constants.X_OK);
  assert.match(readFileSync(entrypoint, 'utf8'), /^#!\/bin\/sh\n/);
  const none = runEntrypoint([]);
  assert.equal(none.status, 64);
  assert.match(none.stderr, /one of: proxy log-forwarder relay/);
  const unknown = runEntrypoint(['derper']);
  assert.equal(unknown.status, 64);
  assert.match(unknown.stderr, /unknown worker "derper"; expected one of: proxy log-forwarder relay/);
  const emptyImage = mkdtempSync(join(tmpdir(), 'switchyard-image-'));
  t.after(() => rmSync(emptyImage, { recursive: true, force: true }));
  for (const worker of WORKERS) {
    const missing = runEntrypoint([worker.name], emptyImage);
    assert.equal(missing.status, 70, worker.name);
    assert.match(missing.stderr, new RegExp(`worker "${worker.name}" is not in this image`));
  }
});

test('the entrypoint execs the named worker with the remaining arguments', () => {
  for (const worker of WORKERS) {
    const run = runEntrypoint([worker.name, '--config', '/nonexistent/switchyard.yaml']);
    assert.equal(run.status, 2, `${worker.name}: a config error exits 2; output: ${run.output}`);
    assert.match(run.output, /config error in \/nonexistent\/switchyard\.yaml/, worker.name);
  }
});
