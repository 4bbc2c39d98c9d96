/**
 * True inside the Lambda runtime, which sets AWS_LAMBDA_FUNCTION_NAME; false where the local
 * runtime or a test calls the handlers in-process.
 */
export const onLambda = (): boolean => Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME);
