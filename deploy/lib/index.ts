// cachenat's CDK constructs: drop a NAT pair (or a single NAT) for ElastiCache
// into your own CDK app. deploy/README.md has the props and a drill.

export { CachenatPair } from './cachenat-pair.js';
export { CachenatInstance } from './cachenat-instance.js';
export { InvalidPropError, MissingPropError, REQUIRED_PROPS } from './props.js';
export type { CachenatInstanceProps, CachenatPairProps, CachenatProps, ExistingElasticIp } from './props.js';
export type { CachenatResources } from './resources.js';
export { HA_GROUP_TAG, policyActions, RUNTIME_POLICY_FILES } from './iam.js';
export { renderConfig, renderUserData, BOOT_CHECK_SCRIPT, BOOT_CHECK_PATH, CONFIG_PATH } from './user-data.js';
export type { BootSignal, RenderedConfig } from './user-data.js';
