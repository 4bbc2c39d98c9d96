// Shapes shared by the training job, the ONNX graph tools and (later) validation and serving.

/** How an image becomes the model's input tensor; carried in the ONNX model's metadata. */
export interface PreprocessSpec {
  /** Shorter side resized to this many pixels before the center crop (256 for ImageNet models). */
  resizeShorter: number;
  /** Square center crop fed to the network (224 for ImageNet models). */
  cropSize: number;
  /** Per-channel mean and std applied to pixel/255, in the model's channel order. */
  mean: [number, number, number];
  std: [number, number, number];
  layout: 'NCHW' | 'NHWC';
  channelOrder: 'RGB' | 'BGR';
}

export const IMAGENET_PREPROCESS: PreprocessSpec = {
  resizeShorter: 256,
  cropSize: 224,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  layout: 'NCHW',
  channelOrder: 'RGB',
};

/** A trained classifier head: logits = relu(x·W1 + b1)·W2 + b2, or x·W + b when linear. */
export interface HeadWeights {
  inputDim: number;
  classes: number;
  /** Row-major dense layers, applied in order, ReLU between them. */
  layers: { weights: Float32Array; bias: Float32Array; inDim: number; outDim: number }[];
}

/** The pooled feature of a backbone, found in its graph. */
export interface FeatureCut {
  inputName: string;
  /** Input shape with the batch dimension as -1, e.g. [-1, 3, 224, 224]. */
  inputShape: number[];
  featureTensor: string;
  featureDim: number;
}

/** The backbone's own final classifier, dequantised: logits = feature·weights + bias. */
export interface BackboneClassifier {
  /** Row-major [featureDim × outputs]. */
  weights: Float32Array;
  bias: Float32Array;
  outputs: number;
}
