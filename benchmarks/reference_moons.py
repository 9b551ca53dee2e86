"""The seed's moons code, written the way the tutorial writes it (plain fit on NumPy arrays).

Prints one JSON line: fit seconds and test accuracy. Run by `python -m benchmarks`.
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

X, y = make_moons(n_samples=1000, noise=0.1, random_state=42)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=42)

model = keras.Sequential(
    [
        keras.Input(shape=(2,)),
        keras.layers.Dense(10, activation="relu"),
        keras.layers.Dense(10, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"]
)

start = time.perf_counter()
history = model.fit(X_train, y_train, epochs=100, batch_size=32, validation_data=(X_test, y_test), verbose=0)
fit_s = time.perf_counter() - start

loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
print(json.dumps({"fit_s": fit_s, "test_accuracy": accuracy}))
