"""The small text corpus the built-in models train on, shipped inside the package.

Why it is here as a Python string: pods cannot download data sets at run time, and a module needs no package-data
configuration to be installed. The text was written for LLMasOS by its authors (no third-party source) and is
released under CC0-1.0 (public domain dedication), so the image can be redistributed without attribution duties.
It is deliberately plain English with repeated structure, so a tiny byte-level model learns visibly in a few
hundred steps.
"""

CORPUS_LICENSE = "CC0-1.0"

CORPUS = """\
The lighthouse keeper climbed the stairs every evening at six. There were one hundred and twelve steps, and he
counted them the way other people count sheep. At the top he wiped the glass, trimmed the wick, and wrote the
weather in a small green book. Wind from the west, light rain, three ships to the south. In the morning he wrote
it again: wind from the north, clear sky, one ship to the east. The book was full of small true sentences.

The baker opened her shop before the sun came up. She mixed flour, water, salt and a little yeast, and she let
the dough rest while the town was still asleep. When the first bus went past the window, the bread went into the
oven. When the second bus went past, the bread came out. People said you could set a clock by her loaves, and on
most days that was true.

A river does not hurry. It finds the lowest path and follows it, around the stone and under the bridge, past the
mill and through the field. In spring it is loud and brown. In summer it is slow and green. In autumn it carries
leaves, red and yellow, like small boats with no one in them. In winter it is quiet, and the ice along the edge
sings when you step on it.

The students sat in a circle and the teacher asked a simple question. What is a computer? One said it is a
machine that follows instructions. One said it is a box that remembers things. One said it is a very fast clerk
who never gets tired but never has a good idea. The teacher smiled and wrote all three answers on the board.

To train a model, you show it many examples and you nudge its numbers after each one. The nudge is small. The
direction comes from the gradient, and the size comes from the learning rate. If the nudge is too large, the
model jumps past the answer. If the nudge is too small, the model takes all night. Good training is patient.

When many machines train one model together, each machine reads a different part of the data. After every step
they share what they learned and agree on the same numbers. This is called data parallel training. When the
model is too large for one machine, the layers can be cut into pieces and passed along like buckets in a line.
This is called pipeline parallel training. When a single layer is too wide, its matrix can be split by columns
and rows, and each machine computes one slice. This is called tensor parallel training.

Electricity is not the same at every hour. At noon the sun may power half the grid, and at night the wind may
power the rest. At other hours the grid burns coal or gas. A patient job can wait for the clean hours. It can
stop, save its work, and start again later without losing a single step. This is called a checkpoint, and a good
checkpoint is exact: the job that stops and resumes ends in the same place as the job that never stopped.

The gardener planted beans in rows of ten. Every morning she walked the rows with a can of water and counted the
new leaves. On Monday there were four. On Tuesday there were nine. On Wednesday it rained, and she did not need
the can at all. On Thursday there were twenty leaves, and on Friday the first flower opened, small and white.

The train left the station at seven minutes past eight. It crossed the river, passed the old mill, and climbed
the hill toward the forest. In the forest the light turned green and the windows filled with trees. At the top of
the hill the train slowed, whistled twice, and rolled down into the valley where the town was waking up.

A good tool does one thing well. A hammer drives a nail. A saw cuts a board. A ruler tells you the length, and a
level tells you if the shelf is straight. A workshop is a room full of good tools, and a good worker knows which
one to pick. When the job is done, the tools go back on the wall, clean and ready for the next day.

The cat sat on the warm stone by the door. It watched the birds in the hedge and the bees in the clover. When
the baker walked past with a basket of bread, the cat opened one eye. When the gardener walked past with a can of
water, the cat closed it again. The cat had decided long ago that bread was interesting and water was not.

Numbers can be stored with fewer bits. A weight that needs thirty two bits can often live in eight, if you keep a
scale beside it. This is called quantization. Some weights are so small that they barely matter, and they can be
set to zero. This is called pruning. A large model can also teach a small one by showing it not only the right
answer but how sure it is about every other answer. This is called distillation, and the small model is the
student.

In the evening the town grew quiet. The bus stopped running, the bakery closed, and the lights went out one by one.
Only the lighthouse stayed awake. The keeper climbed the one hundred and twelve steps, wiped the glass, and wrote
in the green book: wind from the south, warm air, no ships tonight. Then he sat by the lamp and read until dawn.

Rain fell on the roofs and ran down the gutters into the street. The street carried it to the drain, the drain
carried it to the river, and the river carried it to the sea. The sea rose into clouds, the clouds drifted over
the hills, and the rain fell again on the roofs. Nothing was lost. Everything went around and came back.

The old clock in the hall struck nine. The children put away their books and the teacher turned off the lamp.
Outside, the first stars were coming out over the hill, one, then two, then too many to count. Tomorrow there
would be another question on the board, and another circle of answers, each one a little bit true.
"""
