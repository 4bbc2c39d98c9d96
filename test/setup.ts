import { setLogSink } from '../src/log.ts';

// Tests assert on results, not on log lines; keep the output readable.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
setLogSink(() => undefined);
