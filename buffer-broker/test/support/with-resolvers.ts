/**
 * Polyfill for Promise.withResolvers (ES2024, Node >= 22), which @platformatic/kafka 2.x calls at
 * run time; Node 20 lacks it. Import this module before @platformatic/kafka. Test support only:
 * no product code may depend on it.
 */
interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

// lib is ES2023, so the typings don't know the method; widen the constructor locally instead of
// augmenting the global PromiseConstructor for the whole project.
const PromiseCtor = Promise as PromiseConstructor & { withResolvers?: <T>() => Resolvers<T> };

PromiseCtor.withResolvers ??= <T>(): Resolvers<T> => {
  let resolve!: Resolvers<T>['resolve'];
  let reject!: Resolvers<T>['reject'];
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};

export {};
