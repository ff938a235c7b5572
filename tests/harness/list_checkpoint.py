"""Print the (name, shape) list of a checkpoint as the running TF release reads it."""
import sys, tensorflow as tf
r = tf.train.NewCheckpointReader(sys.argv[1])
print(sorted(r.get_variable_to_shape_map().items()))
