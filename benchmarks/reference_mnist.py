"""The codelab's stage-5 MNIST model, written the way the codelab writes it (tf.data, default compile).

Usage: python -m benchmarks.reference_mnist DATA_NPZ EPOCHS. Prints one JSON line.
"""

import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

BATCH_SIZE = 64
arrays = np.load(sys.argv[1])
EPOCHS = int(sys.argv[2])
x_train, y_train = arrays["x_train"].reshape(-1, 28 * 28).astype("float32") / 255.0, arrays["y_train"]
x_test, y_test = arrays["x_test"].reshape(-1, 28 * 28).astype("float32") / 255.0, arrays["y_test"]

training_dataset = (
    tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(5000).batch(BATCH_SIZE).repeat()
)
validation_dataset = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(10000).repeat()
steps_per_epoch = math.ceil(len(x_train) / BATCH_SIZE)

model = keras.Sequential(
    [
        keras.Input(shape=(28 * 28,)),
        keras.layers.Reshape(target_shape=(28, 28, 1)),
        keras.layers.Conv2D(kernel_size=3, filters=12, use_bias=False, padding="same"),
        keras.layers.BatchNormalization(center=True, scale=False),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(kernel_size=6, filters=24, use_bias=False, padding="same", strides=2),
        keras.layers.BatchNormalization(center=True, scale=False),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(kernel_size=6, filters=32, use_bias=False, padding="same", strides=2),
        keras.layers.BatchNormalization(center=True, scale=False),
        keras.layers.Activation("relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(200, use_bias=False),
        keras.layers.BatchNormalization(center=True, scale=False),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=0.01),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
lr_decay = keras.callbacks.LearningRateScheduler(lambda epoch: 0.01 * math.pow(0.666, epoch))

start = time.perf_counter()
model.fit(
    training_dataset,
    steps_per_epoch=steps_per_epoch,
    epochs=EPOCHS,
    validation_data=validation_dataset,
    validation_steps=1,
    callbacks=[lr_decay],
    verbose=0,
)
fit_s = time.perf_counter() - start
loss, accuracy = model.evaluate(validation_dataset, steps=1, verbose=0)
print(json.dumps({"fit_s": fit_s, "test_accuracy": accuracy, "samples": EPOCHS * len(x_train)}))
