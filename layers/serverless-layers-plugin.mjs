// An osls plugin (serverless.yml, plugins) for the `layers:` section:
//
// 1. Builds the layers (build-layers.mjs: a copy out of node_modules, well under a second) before
//    every package or deploy, so `serverless package` never depends on a manual step and a layer
//    always matches the installed sharp / onnxruntime-node.
// 2. Keeps `serverless package` offline. While compiling `layers:`, osls asks CloudFormation
//    (DescribeStacks) whether the deployed stack already holds an identical layer, so that
//    `deploy` can skip re-uploading it. For the `package` command on its own that lookup is only
//    an optimisation for a later deploy, and it needs AWS credentials and the network (CI has
//    neither): it is dropped for `package` only; `deploy` keeps it.

import { buildLayer, LAMBDA_UNZIPPED_LIMIT, LAYERS } from './build-layers.mjs';

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export default class LayersPlugin {
  constructor(serverless, _options, utils) {
    this.serverless = serverless;
    this.log = utils?.log ?? console;
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.buildLayers(),
      'before:package:compileLayers': () => this.skipDeployedLayerLookup(),
    };
  }

  buildLayers() {
    const wanted = Object.keys(this.serverless.service.layers ?? {}).filter((name) => name in LAYERS);
    let total = 0;
    for (const name of wanted) {
      let layer;
      try {
        layer = buildLayer(name);
      } catch (err) {
        throw new this.serverless.classes.Error(`Cannot build the ${name} layer: ${err.message}`);
      }
      total += layer.bytes;
      this.log.verbose?.(`Layer ${name} built: ${mib(layer.bytes)} unzipped (${layer.packages.join(', ')})`);
    }
    if (total > LAMBDA_UNZIPPED_LIMIT) {
      throw new this.serverless.classes.Error(
        `The layers are ${mib(total)} unzipped, over Lambda's ${mib(LAMBDA_UNZIPPED_LIMIT)} limit`,
      );
    }
  }

  skipDeployedLayerLookup() {
    const commands = this.serverless.processedInput?.commands ?? [];
    if (commands[0] !== 'package') return;
    for (const plugin of this.serverless.pluginManager.getPlugins()) {
      if (typeof plugin.compareWithLastLayer === 'function' && typeof plugin.compileLayers === 'function') {
        plugin.compareWithLastLayer = async () => undefined;
      }
    }
  }
}
